package contract

import "strconv"

// Ports of the bridge: SSE on HTTPPort; /metrics, /healthz and /readyz on MetricsPort. The
// operator names them in the pod spec and scrapes MetricsPort; the bridge listens on them by
// default.
const (
	HTTPPort    = 8080
	MetricsPort = 9090
)

// ListenAddress is the listen address of port on every interface: ":8080".
func ListenAddress(port int) string { return ":" + strconv.Itoa(port) }
