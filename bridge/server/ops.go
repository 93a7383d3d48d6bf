package server

import (
	"net/http"

	"github.com/eventstream-operator/eventstream-operator/bridge/metrics"
)

// OpsHandler serves /metrics, /healthz (the process serves) and /readyz (ready() is true:
// connected to the broker and not draining).
func OpsHandler(m *metrics.Metrics, ready func() bool) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !ready() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	return mux
}
