package server

import "net/http"

// ExactPath serves h at exactly path and answers 404 everywhere else. Unlike http.ServeMux
// it never redirects: ServeMux answers a path it would clean (//, /./, /../, a trailing
// slash) with a redirect whose Location repeats the query string, and with it an
// access_token. Nothing on the SSE listener ever answers with a redirect.
func ExactPath(path string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != path {
			http.NotFound(w, r)
			return
		}
		h.ServeHTTP(w, r)
	})
}
