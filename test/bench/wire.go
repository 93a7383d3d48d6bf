package bench

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// WireServer is the wire limit: the least a server must do to stream the benchmark's frames
// to SSE clients. It answers each request with the bridge's response head and opening flush,
// then, on command, writes the same frames the bridge would (id line, data line with the same
// payload, blank line, as one HTTP/1.1 chunk per write) to the connections of each event's
// tenant. No broker, no hub, no buffers: one write(2) per frame per connection, from
// GOMAXPROCS writer goroutines that each own a share of the connections.
type WireServer struct {
	mu      sync.Mutex
	conns   []wireConn
	running atomic.Bool
}

type wireConn struct {
	conn   net.Conn
	tenant string
}

// ServeStreams accepts SSE connections on l until it is closed.
func (s *WireServer) ServeStreams(l net.Listener) error {
	for {
		conn, err := l.Accept()
		if err != nil {
			return err
		}
		go s.handle(conn)
	}
}

func (s *WireServer) handle(conn net.Conn) {
	br := bufio.NewReaderSize(conn, 1024)
	reqLine, err := br.ReadString('\n')
	if err != nil {
		conn.Close()
		return
	}
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			conn.Close()
			return
		}
		if len(line) <= 2 {
			break
		}
	}
	tenant := ""
	if fields := strings.Fields(reqLine); len(fields) >= 2 {
		if u, err := url.ParseRequestURI(fields[1]); err == nil {
			tenant = u.Query().Get("team_id")
		}
	}
	head := "HTTP/1.1 200 OK\r\nCache-Control: no-cache, no-transform\r\nContent-Type: text/event-stream; charset=utf-8\r\n" +
		"X-Accel-Buffering: no\r\nDate: " + time.Now().UTC().Format(http.TimeFormat) + "\r\nTransfer-Encoding: chunked\r\n\r\n"
	opening := ": ok\n\nretry: 3000\n\n"
	if _, err := conn.Write(appendChunk([]byte(head), []byte(opening))); err != nil {
		conn.Close()
		return
	}
	s.mu.Lock()
	s.conns = append(s.conns, wireConn{conn: conn, tenant: tenant})
	s.mu.Unlock()
	// Read until the client leaves, as any server must to notice it.
	var b [64]byte
	for {
		if _, err := conn.Read(b[:]); err != nil {
			break
		}
	}
	conn.Close()
	s.mu.Lock()
	if i := slices.IndexFunc(s.conns, func(c wireConn) bool { return c.conn == conn }); i >= 0 {
		s.conns = slices.Delete(s.conns, i, i+1)
	}
	s.mu.Unlock()
}

func appendChunk(dst, data []byte) []byte {
	dst = strconv.AppendInt(dst, int64(len(data)), 16)
	dst = append(dst, '\r', '\n')
	dst = append(dst, data...)
	return append(dst, '\r', '\n')
}

// WireRun is the result of one paced run.
type WireRun struct {
	Events int64 `json:"events"`
	Writes int64 `json:"writes"`
	Errors int64 `json:"errors"`
}

// Run writes events at rate per second for duration: event k goes to the k-th tenant (in
// sorted order, round robin), to each of its connections. Writers pace themselves on the same
// schedule and each writes to the connections it owns.
func (s *WireServer) Run(rate float64, duration time.Duration) (WireRun, error) {
	if !s.running.CompareAndSwap(false, true) {
		return WireRun{}, fmt.Errorf("a run is already in progress")
	}
	defer s.running.Store(false)
	s.mu.Lock()
	conns := slices.Clone(s.conns)
	s.mu.Unlock()
	tenantSet := map[string]bool{}
	for _, c := range conns {
		tenantSet[c.tenant] = true
	}
	tenants := make([]string, 0, len(tenantSet))
	for t := range tenantSet {
		tenants = append(tenants, t)
	}
	slices.SortFunc(tenants, func(a, b string) int { return compareTenants(a, b) })
	tenantIndex := map[string]int{}
	for i, t := range tenants {
		tenantIndex[t] = i
	}
	workers := runtime.GOMAXPROCS(0)
	owned := make([][][]net.Conn, workers) // worker → tenant index → conns
	for w := range owned {
		owned[w] = make([][]net.Conn, len(tenants))
	}
	for i, c := range conns {
		w := i % workers
		ti := tenantIndex[c.tenant]
		owned[w][ti] = append(owned[w][ti], c.conn)
	}
	total := int64(rate * duration.Seconds())
	var writes, errs atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var frame []byte
			var payload []byte
			for k := int64(0); k < total; {
				due := int64(time.Since(start).Seconds() * rate)
				if k >= due {
					time.Sleep(100 * time.Microsecond) // pacing
					continue
				}
				for ; k < due && k < total; k++ {
					ti := int(k % int64(len(tenants)))
					targets := owned[w][ti]
					if len(targets) == 0 {
						continue
					}
					payload = AppendPayload(payload[:0], k, tenants[ti], time.Now().UnixNano())
					frame = frame[:0]
					event := []byte("id: 0a1b2c3d-" + strconv.FormatInt(k+1, 10) + "\ndata: ")
					event = append(event, payload...)
					event = append(event, '\n', '\n')
					frame = appendChunk(frame, event)
					for _, c := range targets {
						if _, err := c.Write(frame); err != nil {
							errs.Add(1)
						} else {
							writes.Add(1)
						}
					}
				}
			}
		}()
	}
	wg.Wait()
	return WireRun{Events: total, Writes: writes.Load(), Errors: errs.Load()}, nil
}

// compareTenants orders "t2" before "t10" so wire and bridge runs map event k to the same
// tenant.
func compareTenants(a, b string) int {
	if len(a) != len(b) {
		return len(a) - len(b)
	}
	return strings.Compare(a, b)
}

// ControlHandler serves the wire server's control API for the orchestrator:
// GET /stats → {"conns":n}; POST /run?rate=R&duration=D → WireRun.
func (s *WireServer) ControlHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, _ *http.Request) {
		s.mu.Lock()
		n := len(s.conns)
		s.mu.Unlock()
		_ = json.NewEncoder(w).Encode(map[string]int{"conns": n})
	})
	mux.HandleFunc("POST /run", func(w http.ResponseWriter, r *http.Request) {
		rate, err1 := strconv.ParseFloat(r.URL.Query().Get("rate"), 64)
		duration, err2 := time.ParseDuration(r.URL.Query().Get("duration"))
		if err1 != nil || err2 != nil || rate <= 0 || duration <= 0 {
			http.Error(w, "want rate>0 and duration", http.StatusBadRequest)
			return
		}
		res, err := s.Run(rate, duration)
		if err != nil {
			http.Error(w, err.Error(), http.StatusConflict)
			return
		}
		_ = json.NewEncoder(w).Encode(res)
	})
	return mux
}
