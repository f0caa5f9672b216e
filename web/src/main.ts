import './style.css';
import { setupClassify } from './classify.js';
import { byId } from './dom.js';
import { setupTrain } from './train.js';

type Tab = 'classify' | 'train';

function showTab(tab: Tab): void {
  // The live preview keeps a core busy: it runs only while it can be seen.
  if (tab !== 'classify') classify.stopLive();
  for (const t of ['classify', 'train'] as const) {
    byId(`tab-${t}`).setAttribute('aria-selected', String(t === tab));
    byId(`panel-${t}`).hidden = t !== tab;
  }
}

const classify = setupClassify();
setupTrain({
  // Listed, not chosen: the Classify tab keeps its model (and its results) until "Use it now".
  modelReady: () => classify.refresh(),
  useModel: async (id) => {
    await classify.refresh(id);
    showTab('classify');
  },
  livePreview: async (id) => {
    await classify.refresh(id);
    showTab('classify');
    await classify.startLive();
  },
});
byId('tab-classify').addEventListener('click', () => showTab('classify'));
byId('tab-train').addEventListener('click', () => showTab('train'));
void classify.refresh();
