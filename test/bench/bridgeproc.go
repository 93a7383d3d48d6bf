package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/eventstream-operator/eventstream-operator/internal/contract"
	"github.com/eventstream-operator/eventstream-operator/test/poll"
)

// BridgeOptions starts the real bridge binary for a benchmark.
type BridgeOptions struct {
	Binary    string // path of the built cmd/bridge
	AMQPURL   string
	Exchange  string
	Queue     string
	JWTSecret string
	// Addr is the SSE listen address (host:port); empty: a free loopback port.
	Addr string
	// OpsAddr is the operations listen address (host:port); empty: a free loopback port. Fixed
	// addresses let a restarted bridge keep its URLs (test/chaos).
	OpsAddr string
	// Extra flags appended after the harness's own.
	Extra []string
	// Log receives the bridge's stderr (nil: discarded).
	Log io.Writer
}

// BridgeProcess is a running bridge.
type BridgeProcess struct {
	cmd      *exec.Cmd
	done     chan error
	stopOnce sync.Once
	exitErr  error
	Addr     string // SSE host:port
	OpsAddr  string
	Path     string
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// StartBridge starts the bridge with JWT (HS256) auth on, declaring its own topology on
// Exchange/Queue, without connection limits (the benchmark opens 10,000 streams, all of one
// subject, and of one tenant in the broadcast scenario), and waits until /readyz is true.
func StartBridge(ctx context.Context, o BridgeOptions) (*BridgeProcess, error) {
	addr := o.Addr
	if addr == "" {
		ssePort, err := FreePort()
		if err != nil {
			return nil, err
		}
		addr = "127.0.0.1:" + strconv.Itoa(ssePort)
	}
	opsAddr := o.OpsAddr
	if opsAddr == "" {
		opsPort, err := FreePort()
		if err != nil {
			return nil, err
		}
		opsAddr = "127.0.0.1:" + strconv.Itoa(opsPort)
	}
	b := &BridgeProcess{
		Addr:    addr,
		OpsAddr: opsAddr,
		Path:    contract.DefaultPath,
		done:    make(chan error, 1),
	}
	args := []string{
		"--listen", b.Addr, "--metrics-listen", b.OpsAddr, "--path", b.Path,
		"--exchange", o.Exchange, "--queue", o.Queue, "--declare-topology",
		"--max-connections", "0", "--max-connections-per-tenant", "0", "--max-connections-per-subject", "0",
		"--auth-mode", "jwt", "--auth-hs256-secret-env", "BENCH_JWT_SECRET",
		"--log-level", "warn",
	}
	args = append(args, o.Extra...)
	cmd := exec.Command(o.Binary, args...)
	cmd.Env = append(os.Environ(), "RABBITMQ_URL="+o.AMQPURL, "BENCH_JWT_SECRET="+o.JWTSecret)
	cmd.Stdout = o.Log
	cmd.Stderr = o.Log
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start bridge: %w", err)
	}
	b.cmd = cmd
	go func() { b.done <- cmd.Wait() }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + b.OpsAddr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return b, nil
			}
		}
		select {
		case err := <-b.done:
			return nil, fmt.Errorf("bridge exited before ready: %v", err)
		case <-ctx.Done():
			b.Stop()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond): // readiness poll
		}
		if time.Now().After(deadline) {
			b.Stop()
			return nil, errors.New("bridge not ready within 30s")
		}
	}
}

// PID is the bridge's process id.
func (b *BridgeProcess) PID() int { return b.cmd.Process.Pid }

// Metrics scrapes the bridge's /metrics.
func (b *BridgeProcess) Metrics() (map[string]float64, error) {
	return Scrape("http://" + b.OpsAddr + "/metrics")
}

// WaitMetric polls /metrics until metric satisfies ok or the timeout passes.
func (b *BridgeProcess) WaitMetric(name string, ok func(float64) bool, timeout time.Duration) (float64, error) {
	var last float64
	if poll.Within(context.Background(), timeout, 100*time.Millisecond, func() bool {
		m, err := b.Metrics()
		last = m[name]
		return err == nil && ok(last)
	}) {
		return last, nil
	}
	return last, fmt.Errorf("%s = %v after %s", name, last, timeout)
}

// Stop sends SIGINT and waits (SIGKILL after 15s); it is idempotent.
func (b *BridgeProcess) Stop() { b.signalAndWait(os.Interrupt, 15*time.Second) }

// Terminate sends SIGTERM (what Kubernetes sends a pod) and waits for the drain, SIGKILL after
// timeout; it returns the exit error (nil: exit status 0). Only the first of Stop, Terminate
// and Kill signals; later calls return the first one's result.
func (b *BridgeProcess) Terminate(timeout time.Duration) error {
	return b.signalAndWait(syscall.SIGTERM, timeout)
}

// Kill ends the bridge with SIGKILL (no drain: a crash) and waits until it is gone.
func (b *BridgeProcess) Kill() { b.signalAndWait(os.Kill, time.Minute) }

func (b *BridgeProcess) signalAndWait(sig os.Signal, timeout time.Duration) error {
	b.stopOnce.Do(func() {
		_ = b.cmd.Process.Signal(sig)
		select {
		case b.exitErr = <-b.done:
		case <-time.After(timeout):
			_ = b.cmd.Process.Kill()
			b.exitErr = <-b.done
		}
	})
	return b.exitErr
}
