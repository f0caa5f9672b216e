/**
 * One webcam stream shared by every view that shows it (the snapshot, each class's recorder, the
 * live preview): the camera opens on first use and is released when no video shows it any more.
 */

let stream: Promise<MediaStream> | undefined;
const viewers = new Set<HTMLVideoElement>();

/** The browser's refusal in words a user can act on. */
function cameraError(err: unknown): Error {
  const name = (err as { name?: string }).name;
  if (name === 'NotAllowedError') return new Error('the browser was not allowed to use the camera; allow it (the camera icon in the address bar) and try again');
  if (name === 'NotFoundError' || name === 'OverconstrainedError') return new Error('no camera found; plug one in, or drop photos instead');
  if (name === 'NotReadableError') return new Error('the camera is busy in another program; close it there and try again');
  if (!navigator.mediaDevices) return new Error('this page has no camera access (it needs http://localhost or https)');
  return new Error(`the camera did not start (${(err as Error).message})`);
}

function open(): Promise<MediaStream> {
  if (!stream) {
    const opening = (async () => {
      try {
        return await navigator.mediaDevices.getUserMedia({ video: { width: { ideal: 640 }, height: { ideal: 480 } }, audio: false });
      } catch (err) {
        throw cameraError(err);
      }
    })();
    stream = opening;
    opening.catch(() => {
      if (stream === opening) stream = undefined;
    });
  }
  return stream;
}

/** Shows the camera in `video`; resolves once it has a frame (so its size is known). */
export async function showCamera(video: HTMLVideoElement): Promise<void> {
  const s = await open();
  viewers.add(video);
  if (video.srcObject !== s) video.srcObject = s;
  await video.play().catch(() => undefined);
  if (video.videoWidth === 0) await new Promise<void>((resolve) => video.addEventListener('loadeddata', () => resolve(), { once: true }));
}

/** Stops showing the camera in `video`; the camera turns off when nothing shows it. */
export function hideCamera(video: HTMLVideoElement): void {
  if (!viewers.delete(video)) return;
  video.srcObject = null;
  if (viewers.size > 0 || !stream) return;
  const closing = stream;
  stream = undefined;
  void closing.then((s) => s.getTracks().forEach((t) => t.stop())).catch(() => undefined);
}

/** The current frame at the video's own size, drawn on `canvas` (reused from frame to frame). */
export function drawFrame(video: HTMLVideoElement, canvas: HTMLCanvasElement): CanvasRenderingContext2D {
  if (!video.videoWidth) throw new Error('the camera has no picture yet');
  if (canvas.width !== video.videoWidth) canvas.width = video.videoWidth;
  if (canvas.height !== video.videoHeight) canvas.height = video.videoHeight;
  const g = canvas.getContext('2d', { willReadFrequently: true });
  if (!g) throw new Error('this browser has no 2D canvas');
  g.drawImage(video, 0, 0);
  return g;
}

/** The current frame as a JPEG file named `name`. */
export function frameFile(video: HTMLVideoElement, name: string): Promise<File> {
  const canvas = document.createElement('canvas');
  drawFrame(video, canvas);
  return new Promise((resolve, reject) =>
    canvas.toBlob((blob) => (blob ? resolve(new File([blob], name, { type: 'image/jpeg' })) : reject(new Error('the frame could not be encoded'))), 'image/jpeg', 0.92),
  );
}
