import './style.css';
import { setupClassify } from './classify.js';
import { byId } from './dom.js';
import { setupTrain } from './train.js';

type Tab = 'classify' | 'train';

function showTab(tab: Tab): void {
  for (const t of ['classify', 'train'] as const) {
    byId(`tab-${t}`).setAttribute('aria-selected', String(t === tab));
    byId(`panel-${t}`).hidden = t !== tab;
  }
}

const classify = setupClassify();
setupTrain({
  modelReady: (id) => classify.refresh(id),
  useModel: async (id) => {
    await classify.refresh(id);
    showTab('classify');
  },
});
byId('tab-classify').addEventListener('click', () => showTab('classify'));
byId('tab-train').addEventListener('click', () => showTab('train'));
void classify.refresh();
