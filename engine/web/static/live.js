// The live status stream (server-sent events from /api/events). EventSource reconnects
// by itself after a network blip; when the server refuses the stream (a 401 after the
// session ended, a restart in progress) it gives up, so we ask the caller what to do
// and try again a little later.

const RETRY_MS = 3000;

export class LiveStatus {
  constructor({ onStatus, onLink, onRefused }) {
    this.onStatus = onStatus;
    this.onLink = onLink; // 'connecting' | 'live' | 'lost'
    this.onRefused = onRefused; // async; returns false to stop retrying
    this.source = null;
    this.timer = null;
    this.stopped = true;
  }

  start() {
    this.stopped = false;
    this.open();
  }

  open() {
    clearTimeout(this.timer);
    this.onLink('connecting');
    const source = new EventSource('/api/events');
    this.source = source;
    source.addEventListener('status', (event) => {
      this.onLink('live');
      this.onStatus(JSON.parse(event.data));
    });
    source.addEventListener('error', async () => {
      if (this.stopped || source !== this.source) return;
      if (source.readyState !== EventSource.CLOSED) {
        this.onLink('lost'); // the browser is already reconnecting
        return;
      }
      this.onLink('lost');
      source.close();
      const again = await this.onRefused();
      if (again && !this.stopped) this.timer = setTimeout(() => this.open(), RETRY_MS);
    });
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    this.source?.close();
    this.source = null;
  }
}
