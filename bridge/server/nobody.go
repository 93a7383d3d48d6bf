package server

import (
	"net/http"
	"time"
)

// RefuseRequestBodies wraps next, a handler of requests that never carry a body (event
// streams, the operations endpoints). A request that announces one — a Content-Length above
// zero or a chunked body — is answered 400 and its connection closed at once, without reading
// a byte of the body: net/http would otherwise wait for the announced body after the response
// (to keep the connection alive), and a client that never sends it would hold the socket.
// onRefuse, when not nil, is called for each refused request (metrics).
func RefuseRequestBodies(next http.Handler, onRefuse func(*http.Request)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength == 0 {
			next.ServeHTTP(w, r)
			return
		}
		if onRefuse != nil {
			onRefuse(r)
		}
		// An expired read deadline makes net/http's post-handler read of the body fail at
		// once; Connection: close makes it close the connection instead of waiting for the
		// next request.
		_ = http.NewResponseController(w).SetReadDeadline(time.Unix(1, 0))
		hdr := w.Header()
		hdr.Set("Connection", "close")
		hdr.Set("Content-Type", "text/plain; charset=utf-8")
		hdr.Set("Cache-Control", "no-store")
		hdr.Set("X-Content-Type-Options", "nosniff")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte("request body not allowed: this endpoint takes GET requests without a body\n"))
	})
}
