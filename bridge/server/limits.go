package server

import "sync"

// connectionLimiter enforces the total, per-tenant and per-subject caps on open streams. Its
// memory is bounded by the open streams: a tenant's or subject's entry disappears with its
// last stream.
type connectionLimiter struct {
	maxTotal, maxPerTenant, maxPerSubject int

	mu         sync.Mutex
	total      int
	perTenant  map[string]int
	perSubject map[string]int
}

// limitResult says why acquire refused, or limitOK.
type limitResult int

const (
	limitOK limitResult = iota
	limitTotal
	limitSubject
	limitTenant
)

func newConnectionLimiter(maxTotal, maxPerTenant, maxPerSubject int) *connectionLimiter {
	return &connectionLimiter{maxTotal: maxTotal, maxPerTenant: maxPerTenant, maxPerSubject: maxPerSubject,
		perTenant: map[string]int{}, perSubject: map[string]int{}}
}

// acquire takes one slot in total, one for subject (unless it is empty: not limited per
// subject) and one for each of tenants (the tenants the stream can read; empty for an
// all-tenants stream). The caps are checked in that order. On anything but limitOK nothing was
// taken.
func (l *connectionLimiter) acquire(tenants []string, subject string) limitResult {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.maxTotal > 0 && l.total >= l.maxTotal {
		return limitTotal
	}
	if l.maxPerSubject > 0 && subject != "" && l.perSubject[subject] >= l.maxPerSubject {
		return limitSubject
	}
	if l.maxPerTenant > 0 {
		for _, t := range tenants {
			if l.perTenant[t] >= l.maxPerTenant {
				return limitTenant
			}
		}
	}
	l.total++
	if subject != "" {
		l.perSubject[subject]++
	}
	for _, t := range tenants {
		l.perTenant[t]++
	}
	return limitOK
}

// release returns what acquire(tenants, subject) took.
func (l *connectionLimiter) release(tenants []string, subject string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.total--
	if subject != "" {
		if l.perSubject[subject]--; l.perSubject[subject] <= 0 {
			delete(l.perSubject, subject)
		}
	}
	for _, t := range tenants {
		if l.perTenant[t]--; l.perTenant[t] <= 0 {
			delete(l.perTenant, t)
		}
	}
}
