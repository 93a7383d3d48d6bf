package server

import "sync"

// connectionLimiter enforces the total and per-tenant caps on open streams. Its memory is
// bounded by the open streams: a tenant's entry disappears with its last stream.
type connectionLimiter struct {
	maxTotal, maxPerTenant int

	mu        sync.Mutex
	total     int
	perTenant map[string]int
}

// limitResult says why acquire refused, or limitOK.
type limitResult int

const (
	limitOK limitResult = iota
	limitTotal
	limitTenant
)

func newConnectionLimiter(maxTotal, maxPerTenant int) *connectionLimiter {
	return &connectionLimiter{maxTotal: maxTotal, maxPerTenant: maxPerTenant, perTenant: map[string]int{}}
}

// acquire takes one slot in total and one for each of tenants (the tenants the stream can
// read; empty for an all-tenants stream). On anything but limitOK nothing was taken.
func (l *connectionLimiter) acquire(tenants []string) limitResult {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.maxTotal > 0 && l.total >= l.maxTotal {
		return limitTotal
	}
	if l.maxPerTenant > 0 {
		for _, t := range tenants {
			if l.perTenant[t] >= l.maxPerTenant {
				return limitTenant
			}
		}
	}
	l.total++
	for _, t := range tenants {
		l.perTenant[t]++
	}
	return limitOK
}

// release returns what acquire(tenants) took.
func (l *connectionLimiter) release(tenants []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.total--
	for _, t := range tenants {
		if l.perTenant[t]--; l.perTenant[t] <= 0 {
			delete(l.perTenant, t)
		}
	}
}
