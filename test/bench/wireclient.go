package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/eventstream-operator/eventstream-operator/test/poll"
)

// Wire is a wire-limit server reachable by the orchestrator: Addr takes SSE connections,
// Control is its control API (WireServer.ControlHandler), PID the process to measure.
type Wire struct {
	Addr    string
	Control string
	PID     int
	cmd     *exec.Cmd
}

// StartWireProcess runs `self wire --listen A --control C` (self: the bench binary) in its own
// process, so its sockets count against its own open-file limit.
func StartWireProcess(self string) (*Wire, error) {
	p1, err := FreePort()
	if err != nil {
		return nil, err
	}
	p2, err := FreePort()
	if err != nil {
		return nil, err
	}
	w := &Wire{Addr: fmt.Sprintf("127.0.0.1:%d", p1), Control: fmt.Sprintf("127.0.0.1:%d", p2)}
	w.cmd = exec.Command(self, "wire", "--listen", w.Addr, "--control", w.Control)
	w.cmd.Stderr = os.Stderr
	if err := w.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start wire server: %w", err)
	}
	w.PID = w.cmd.Process.Pid
	if !poll.Within(context.Background(), 10*time.Second, 20*time.Millisecond, func() bool { _, err := w.Conns(); return err == nil }) {
		w.Stop()
		return nil, fmt.Errorf("wire server not up within 10s")
	}
	return w, nil
}

// Conns is the number of streams the wire server holds.
func (w *Wire) Conns() (int, error) {
	resp, err := http.Get("http://" + w.Control + "/stats")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var s struct{ Conns int }
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		return 0, err
	}
	return s.Conns, nil
}

// WaitConns polls until the server holds n streams.
func (w *Wire) WaitConns(n int, timeout time.Duration) error {
	var got int
	var err error
	if poll.Within(context.Background(), timeout, 20*time.Millisecond, func() bool {
		got, err = w.Conns()
		return err == nil && got == n
	}) {
		return nil
	}
	return fmt.Errorf("wire server holds %d streams, want %d (%v)", got, n, err)
}

// Run asks for a paced run and waits for it.
func (w *Wire) Run(rate float64, duration time.Duration) (WireRun, error) {
	q := url.Values{"rate": {fmt.Sprint(rate)}, "duration": {duration.String()}}
	resp, err := http.Post("http://"+w.Control+"/run?"+q.Encode(), "text/plain", strings.NewReader(""))
	if err != nil {
		return WireRun{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return WireRun{}, fmt.Errorf("wire run: %s: %s", resp.Status, b)
	}
	var r WireRun
	return r, json.NewDecoder(resp.Body).Decode(&r)
}

// Stop ends the wire process (when the harness started it).
func (w *Wire) Stop() {
	if w.cmd != nil && w.cmd.Process != nil {
		_ = w.cmd.Process.Kill()
		_ = w.cmd.Wait()
	}
}
