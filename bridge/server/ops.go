package server

import (
	"net/http"

	"github.com/eventstream-operator/eventstream-operator/bridge/metrics"
)

// OpsHandler serves /metrics, /healthz (the process serves) and /readyz (ready() is true:
// connected to the broker and not draining), for GET and HEAD at exactly those paths: other
// paths get 404 and never a redirect (see ExactPath), other methods 405.
func OpsHandler(m *metrics.Metrics, ready func() bool) http.Handler {
	metricsHandler := m.Handler()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var serve func(http.ResponseWriter, *http.Request)
		switch r.URL.Path {
		case "/metrics":
			serve = metricsHandler.ServeHTTP
		case "/healthz":
			serve = func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) }
		case "/readyz":
			serve = func(w http.ResponseWriter, _ *http.Request) {
				if !ready() {
					http.Error(w, "not ready", http.StatusServiceUnavailable)
					return
				}
				_, _ = w.Write([]byte("ready\n"))
			}
		default:
			http.NotFound(w, r)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		serve(w, r)
	})
}
