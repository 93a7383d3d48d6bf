// The README's openEvents ("The browser side"), with the token refreshed before it expires.

// Token is what the app's token route returns: a bridge JWT and the seconds it has left.
export type Token = { token: string; expiresIn: number };

export type ConnectionState = "connecting" | "open" | "reconnecting";

type Options<T> = {
  url: string; // the stream with its filters, e.g. /api/v1/events?team_id=42&job_id=7
  getToken: () => Promise<Token>;
  onEvent: (event: T) => void;
  onGap: () => void; // events were missed: reload state from the application's API
  onState: (state: ConnectionState) => void;
};

// openEvents opens an EventSource on url and keeps it open. The browser reconnects by itself,
// sending Last-Event-ID, after network errors and when the bridge ends a stream (drain). A new
// EventSource with a fresh token is opened when 80% of the token's lifetime has passed, and
// when the browser gives up for good (401/403/400, e.g. after the token expired offline); it
// carries the last event id in the lastEventId parameter (a new EventSource sends no
// Last-Event-ID), so the bridge resumes exactly where the old one stopped. Returns a function
// that closes the stream.
export function openEvents<T>({ url, getToken, onEvent, onGap, onState }: Options<T>): () => void {
  let source: EventSource | undefined;
  let lastEventId = "";
  let closed = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const reopenIn = (ms: number) => {
    clearTimeout(timer);
    timer = setTimeout(open, ms);
  };
  async function open() {
    let token: Token;
    try {
      token = await getToken();
    } catch {
      onState("reconnecting");
      if (!closed) reopenIn(1000);
      return;
    }
    if (closed) return;
    source?.close();
    const streamURL = new URL(url, location.href);
    streamURL.searchParams.set("access_token", token.token); // EventSource cannot set headers
    if (lastEventId) streamURL.searchParams.set("lastEventId", lastEventId);
    const es = new EventSource(streamURL);
    source = es;
    es.onopen = () => onState("open");
    es.onmessage = (e) => {
      lastEventId = e.lastEventId;
      onEvent(JSON.parse(e.data));
    };
    es.addEventListener("gap", (e) => {
      lastEventId = (e as MessageEvent).lastEventId || lastEventId;
      onGap();
    });
    es.onerror = () => {
      onState("reconnecting");
      if (es.readyState === EventSource.CLOSED) reopenIn(1000); // refused: open with a fresh token
    };
    reopenIn(token.expiresIn * 800);
  }
  onState("connecting");
  open();
  return () => {
    closed = true;
    clearTimeout(timer);
    source?.close();
  };
}
