import { frameFile, hideCamera, showCamera } from './camera.js';
import { byId, h, onDrop } from './dom.js';
import { notAPhoto, sniff } from './photos.js';

/** The server refuses smaller classes: each needs a training, a validation and a test photo. */
export const MIN_PHOTOS = 3;
/** Frames a second while "hold to record" is held: Teachable Machine's pace, a few dozen photos in a few seconds. */
const RECORD_FPS = 5;

interface Photo {
  readonly file: File;
  readonly thumb: HTMLElement;
}

interface ClassDraft {
  name: string;
  readonly photos: Photo[];
  readonly card: HTMLElement;
  /** Stops the webcam recorder of this card, if it is open. */
  closeCamera(): void;
}

/** The classes being put together on the Train tab: names, photos, the webcam recorder of each. */
export interface ClassEditor {
  /** The photos by class, in the order they were added. */
  classes(): { readonly name: string; readonly files: readonly File[] }[];
}

/** Why `name` cannot be a class, with the server's rules (src/server/names.ts), or '' when it can. */
function nameProblem(name: string, others: readonly ClassDraft[]): string {
  if (!name) return 'Give the class a name.';
  if (name.length > 64) return 'At most 64 characters.';
  if (/[\u0000-\u001f\u007f/\\]/.test(name) || name.startsWith('.')) return 'No slashes, and no dot at the start.';
  if (others.some((d) => d.name === name)) return 'There is already a class with that name.';
  return '';
}

export function setupClasses(onChange: () => void): ClassEditor {
  const drafts: ClassDraft[] = [];
  const list = byId('classes');
  const nameInput = byId<HTMLInputElement>('class-name');

  function showCount(draft: ClassDraft): void {
    const n = draft.photos.length;
    draft.card.querySelector('.count')!.textContent = `${n} photo${n === 1 ? '' : 's'}`;
    draft.card.dataset.photos = String(n);
    onChange();
  }

  function addPhoto(draft: ClassDraft, file: File): void {
    const remove = h('button', { type: 'button', class: 'thumb-remove', title: `remove ${file.name}`, 'aria-label': `remove ${file.name}` }, '×');
    const img = h('img', { src: URL.createObjectURL(file), alt: file.name });
    // A photo the browser cannot show (TIFF in Chromium) still trains on the server: a plain tile, not a broken icon.
    img.addEventListener('error', () => img.replaceWith(h('span', { class: 'no-preview', title: file.name }, file.name.slice(0, 12))), { once: true });
    const thumb = h('figure', { class: 'thumb', 'data-name': file.name }, img, remove);
    const photo: Photo = { file, thumb };
    remove.addEventListener('click', () => {
      draft.photos.splice(draft.photos.indexOf(photo), 1);
      URL.revokeObjectURL(img.src);
      thumb.remove();
      showCount(draft);
    });
    draft.photos.push(photo);
    draft.card.querySelector('.thumbs')!.append(thumb);
  }

  /** Adds the files that are photos; the others are named in one line each. */
  async function addFiles(draft: ClassDraft, files: readonly File[]): Promise<void> {
    const refused: string[] = [];
    for (const f of files) {
      if (await sniff(f)) addPhoto(draft, f);
      else refused.push(notAPhoto(f.name));
    }
    const error = draft.card.querySelector<HTMLElement>('.class-error')!;
    error.replaceChildren(...refused.map((r) => h('span', {}, `${r}; it was not added.`)));
    error.hidden = refused.length === 0;
    showCount(draft);
  }

  function recorder(draft: ClassDraft): { panel: HTMLElement; open(): Promise<void>; close(): void } {
    const video = h('video', { muted: '', playsinline: '', class: 'recorder-video' });
    video.muted = true;
    const record = h('button', { type: 'button', class: 'button record' }, 'Hold to record');
    const close = h('button', { type: 'button', class: 'link webcam-close' }, 'close the webcam');
    const note = h('span', { class: 'muted' }, `${RECORD_FPS} photos a second while held`);
    const panel = h('div', { class: 'recorder', hidden: '' }, video, h('div', { class: 'recorder-controls' }, record, note, close));
    let timer: ReturnType<typeof setInterval> | undefined;
    let taken = 0;
    const grab = (): void => {
      if (!video.videoWidth) return;
      taken += 1;
      void frameFile(video, `${draft.name}-webcam-${taken}.jpg`).then((f) => {
        addPhoto(draft, f);
        showCount(draft);
      });
    };
    const start = (): void => {
      if (timer !== undefined) return;
      record.classList.add('recording');
      record.textContent = 'Recording...';
      grab();
      timer = setInterval(grab, 1000 / RECORD_FPS);
    };
    const stop = (): void => {
      if (timer === undefined) return;
      clearInterval(timer);
      timer = undefined;
      record.classList.remove('recording');
      record.textContent = 'Hold to record';
    };
    record.addEventListener('pointerdown', (e) => {
      record.setPointerCapture(e.pointerId);
      start();
    });
    for (const type of ['pointerup', 'pointercancel', 'lostpointercapture'] as const) record.addEventListener(type, stop);
    record.addEventListener('keydown', (e) => {
      if ((e.key === ' ' || e.key === 'Enter') && !e.repeat) {
        e.preventDefault();
        start();
      }
    });
    record.addEventListener('keyup', stop);
    record.addEventListener('blur', stop);
    const shut = (): void => {
      stop();
      hideCamera(video);
      panel.hidden = true;
    };
    close.addEventListener('click', shut);
    return {
      panel,
      open: async () => {
        panel.hidden = false;
        await showCamera(video);
      },
      close: shut,
    };
  }

  function rename(draft: ClassDraft, input: HTMLInputElement): void {
    const name = input.value.normalize('NFC').trim();
    const problem = name === draft.name ? '' : nameProblem(name, drafts);
    input.setCustomValidity(problem);
    if (problem) {
      input.reportValidity();
      input.value = draft.name;
      input.setCustomValidity('');
      return;
    }
    draft.name = name;
    input.value = name;
    draft.card.dataset.class = name;
    draft.card.querySelector('.remove-class')!.setAttribute('title', `remove ${name}`);
    onChange();
  }

  function addClass(name: string): void {
    const files = h('input', { type: 'file', accept: 'image/*', multiple: '', hidden: '', class: 'class-files' });
    const title = h('input', { type: 'text', class: 'class-title', value: name, maxlength: '64', 'aria-label': 'class name (click to rename)' });
    const remove = h('button', { type: 'button', class: 'link remove-class', title: `remove ${name}` }, 'remove');
    const webcam = h('button', { type: 'button', class: 'button secondary webcam-toggle' }, 'Webcam');
    const zone = h('div', { class: 'dropzone small' }, h('span', {}, 'Drop photos or '), h('label', { class: 'button secondary' }, 'add photos', files), webcam);
    const camError = h('p', { class: 'error camera-error', hidden: '' });
    const card = h(
      'div',
      { class: 'class-card', 'data-class': name, 'data-photos': '0' },
      h('div', { class: 'class-head' }, title, h('span', { class: 'count muted' }, '0 photos'), remove),
      zone,
      h('p', { class: 'error class-error', hidden: '' }),
      camError,
    );
    const draft: ClassDraft = { name, photos: [], card, closeCamera: () => undefined };
    const rec = recorder(draft);
    draft.closeCamera = rec.close;
    card.append(rec.panel, h('div', { class: 'thumbs' }));
    title.addEventListener('change', () => rename(draft, title));
    title.addEventListener('keydown', (e) => {
      if (e.key === 'Enter') title.blur();
    });
    files.addEventListener('change', () => {
      void addFiles(draft, [...(files.files ?? [])]);
      files.value = '';
    });
    onDrop(zone, (dropped) => void addFiles(draft, dropped));
    webcam.addEventListener('click', async () => {
      // One recorder at a time, like one camera in front of one class.
      for (const d of drafts) if (d !== draft) d.closeCamera();
      camError.hidden = true;
      try {
        await rec.open();
      } catch (err) {
        rec.close();
        camError.textContent = `No webcam: ${(err as Error).message}`;
        camError.hidden = false;
      }
    });
    remove.addEventListener('click', () => {
      rec.close();
      drafts.splice(drafts.indexOf(draft), 1);
      for (const p of draft.photos) URL.revokeObjectURL(p.thumb.querySelector('img')?.src ?? '');
      card.remove();
      onChange();
    });
    drafts.push(draft);
    list.append(card);
    onChange();
  }

  nameInput.addEventListener('input', () => nameInput.setCustomValidity(''));
  byId<HTMLFormElement>('add-class').addEventListener('submit', (e) => {
    e.preventDefault();
    // No name typed: "Class 3", as Teachable Machine names a new class; rename it on its card.
    let name = nameInput.value.normalize('NFC').trim();
    if (!name) for (let n = drafts.length + 1; !name || drafts.some((d) => d.name === name); n++) name = `Class ${n}`;
    const problem = nameProblem(name, drafts);
    nameInput.setCustomValidity(problem);
    if (problem) {
      nameInput.reportValidity();
      return;
    }
    addClass(name);
    nameInput.value = '';
  });

  return { classes: () => drafts.map((d) => ({ name: d.name, files: d.photos.map((p) => p.file) })) };
}
