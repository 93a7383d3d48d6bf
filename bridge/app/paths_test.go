package app

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestNoRedirectRepeatsTheToken: paths that http.ServeMux would clean (//, /./, /../, a
// trailing slash) are answered 404 on both listeners, never with a redirect, and no response
// header or body repeats the access_token of the query (a redirect's Location used to).
func TestNoRedirectRepeatsTheToken(t *testing.T) {
	t.Parallel()
	b := startWithoutBroker(t)
	const token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJsZWFrIn0.c2VjcmV0LXRva2VuLXNpZ25hdHVyZQ"
	query := "?team_id=1&access_token=" + token
	cases := []struct {
		addr, path string
		status     int // 404 unless set
		query      string
	}{
		// The stream path itself, refused for bad parameters: the answer names no value.
		{addr: b.SSEAddr(), path: "/api/v1/events", status: 400, query: query + "&access_token=" + token},
		{addr: b.SSEAddr(), path: "/api/v1/events", status: 400, query: query + "&token=" + token},
		{addr: b.SSEAddr(), path: "/api/v1/events", status: 400, query: "?team_id=a.b&access_token=" + token},
		{addr: b.SSEAddr(), path: "/api/v1/events", status: 405, query: query},
		{addr: b.SSEAddr(), path: "/api/v1//events"},
		{addr: b.SSEAddr(), path: "//api/v1/events"},
		{addr: b.SSEAddr(), path: "/api/v1/./events"},
		{addr: b.SSEAddr(), path: "/api/./v1/events"},
		{addr: b.SSEAddr(), path: "/api/v1/x/../events"},
		{addr: b.SSEAddr(), path: "/api/v1/events/"},
		{addr: b.SSEAddr(), path: "/api/v1/events/."},
		{addr: b.SSEAddr(), path: "/api/v1/events/.."},
		{addr: b.SSEAddr(), path: "/api/v1"},
		{addr: b.OpsAddr(), path: "//metrics"},
		{addr: b.OpsAddr(), path: "/./healthz"},
		{addr: b.OpsAddr(), path: "/x/../readyz"},
		{addr: b.OpsAddr(), path: "/healthz/"},
		{addr: b.OpsAddr(), path: "/metrics/"},
	}
	for _, c := range cases {
		method, want := "GET", c.status
		if want == 0 {
			c.query, want = query, http.StatusNotFound
		}
		if want == http.StatusMethodNotAllowed {
			method = "DELETE"
		}
		resp, body := rawRequest(t, c.addr, method, c.path+c.query)
		if resp.StatusCode >= 300 && resp.StatusCode < 400 {
			t.Errorf("GET %s: %s, Location %q; want no redirect", c.path, resp.Status, resp.Header.Get("Location"))
			continue
		}
		if resp.StatusCode != want {
			t.Errorf("%s %s: %s, want %d", method, c.path, resp.Status, want)
		}
		for name, values := range resp.Header {
			for _, v := range values {
				if strings.Contains(v, token) {
					t.Errorf("GET %s: header %s repeats the token: %q", c.path, name, v)
				}
			}
		}
		if strings.Contains(body, token) {
			t.Errorf("GET %s: body repeats the token: %q", c.path, body)
		}
	}
}

// rawRequest sends a request for target exactly as written (no client-side cleaning) and
// returns the response and up to 64 KiB of its body.
func rawRequest(t *testing.T, addr, method, target string) (*http.Response, string) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, method+" "+target+" HTTP/1.1\r\nHost: bridge\r\nConnection: close\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return resp, string(body)
}
