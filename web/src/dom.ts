/** A few DOM helpers. Text always goes in as text (class and file names come from users). */

type Child = Node | string | null | undefined | false;

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props: Partial<Record<string, string>> = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) if (value !== undefined) el.setAttribute(key, value);
  for (const c of children) if (c) el.append(c);
  return el;
}

export function byId<T extends HTMLElement>(id: string): T {
  const el = document.getElementById(id);
  if (!el) throw new Error(`#${id} missing from the page`);
  return el as T;
}

export function percent(x: number, digits = 1): string {
  return `${(x * 100).toFixed(digits)}%`;
}

/** A horizontal bar for a probability, with the label and the value as text. */
export function bar(label: string, probability: number): HTMLElement {
  const fill = h('span', { class: 'bar-fill' });
  fill.style.width = `${Math.max(0, Math.min(1, probability)) * 100}%`;
  return h(
    'div',
    { class: 'bar', 'data-label': label, 'data-probability': String(probability) },
    h('span', { class: 'bar-label' }, label),
    h('span', { class: 'bar-track' }, fill),
    h('span', { class: 'bar-value' }, percent(probability)),
  );
}

/** Makes `zone` accept dropped files (and highlights it while something is dragged over). */
export function onDrop(zone: HTMLElement, accept: (files: File[]) => void): void {
  zone.addEventListener('dragover', (e) => {
    e.preventDefault();
    zone.classList.add('over');
  });
  zone.addEventListener('dragleave', () => zone.classList.remove('over'));
  zone.addEventListener('drop', (e) => {
    e.preventDefault();
    zone.classList.remove('over');
    const files = [...(e.dataTransfer?.files ?? [])].filter((f) => f.type.startsWith('image/') || f.type === '');
    if (files.length > 0) accept(files);
  });
}
