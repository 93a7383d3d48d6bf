package bench

import "strconv"

// AppendPayload appends the JSON body of benchmark event k for tenant: the event contract's
// fields (docs/events.md) at a realistic size (~230 bytes) plus SentField, the send time in
// Unix nanoseconds.
func AppendPayload(dst []byte, k int64, tenant string, sentNanos int64) []byte {
	dst = append(dst, `{"id":"bench-`...)
	dst = strconv.AppendInt(dst, k, 10)
	dst = append(dst, `","type":"job.status","team_id":"`...)
	dst = append(dst, tenant...)
	dst = append(dst, `","job_id":"7","status":"running","progress":57,"message":"processing chunk 57 of 100","time":"2026-11-27T06:00:00.123456789Z",`...)
	dst = append(dst, SentField...)
	dst = strconv.AppendInt(dst, sentNanos, 10)
	return append(dst, '}')
}

// RoutingKey is the default template's routing key of a benchmark event for tenant.
func RoutingKey(tenant string) string { return "team." + tenant + ".job.7.status" }
