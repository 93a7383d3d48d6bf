// The README's openEvents ("The browser side"), with the token refreshed before it expires and
// optional callbacks for the bridge's snapshot (docs/bridge.md, "Snapshot").

// Token is what the app's token route returns: a bridge JWT and the seconds it has left.
export type Token = { token: string; expiresIn: number };

export type ConnectionState = "connecting" | "open" | "reconnecting";

// SnapshotEnd is the data of `snapshot-end`: how many keys the snapshot held, and whether the
// bridge may lack keys (a classic/quorum bridge that restarted recently).
export type SnapshotEnd = { keys: number; partial: boolean };

type Options<T> = {
  url: string; // the stream with its filters, e.g. /api/v1/events?team_id=42&job_id=7
  getToken: () => Promise<Token>;
  onEvent: (event: T) => void;
  onGap: () => void; // events were missed: reload state from the application's API
  onState: (state: ConnectionState) => void;
  // With snapshot=1 in url (a bridge with snapshots on): the newest event of one key, then
  // the end of the snapshot. A snapshot follows the stream's start and every gap.
  onSnapshot?: (event: T) => void;
  onSnapshotEnd?: (end: SnapshotEnd) => void;
};

// openEvents opens an EventSource on url and keeps it open. The browser reconnects by itself,
// sending Last-Event-ID, after network errors and when the bridge ends a stream (drain). A new
// EventSource with a fresh token is opened when 80% of the token's lifetime has passed, and
// when the browser gives up for good (401/403/400, e.g. after the token expired offline); it
// carries the last event id in the lastEventId parameter (a new EventSource sends no
// Last-Event-ID), so the bridge resumes exactly where the old one stopped. Returns a function
// that closes the stream. Snapshot events carry no id, so they do not move the last event id:
// only live events and snapshot-end (the position the snapshot reflects) do.
export function openEvents<T>({ url, getToken, onEvent, onGap, onState, onSnapshot, onSnapshotEnd }: Options<T>): () => void {
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
    if (onSnapshot) es.addEventListener("snapshot", (e) => onSnapshot(JSON.parse((e as MessageEvent).data)));
    es.addEventListener("snapshot-end", (e) => {
      lastEventId = (e as MessageEvent).lastEventId || lastEventId;
      onSnapshotEnd?.(JSON.parse((e as MessageEvent).data));
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
