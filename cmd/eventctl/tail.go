package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/eventstream-operator/eventstream-operator/bridge/sse"
	"github.com/eventstream-operator/eventstream-operator/internal/cli"
)

// headerList collects repeated --header "Name: value" flags.
type headerList []string

func (h *headerList) String() string     { return strings.Join(*h, ", ") }
func (h *headerList) Set(v string) error { *h = append(*h, v); return nil }

type tailOptions struct {
	url         string
	lastEventID string
	headers     http.Header
	retry       time.Duration
	maxRetries  int
	jsonOutput  bool
	client      *http.Client
}

func runTail(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("eventctl tail", flag.ContinueOnError)
	var (
		o       tailOptions
		headers headerList
	)
	fs.StringVar(&o.lastEventID, "last-event-id", "", "resume after this event id")
	fs.Var(&headers, "header", `extra request header "Name: value" (repeatable)`)
	fs.DurationVar(&o.retry, "retry", 3*time.Second, "reconnect delay until the server sends retry:")
	fs.IntVar(&o.maxRetries, "max-reconnects", -1, "give up after this many reconnects in a row without an event (-1: never)")
	fs.BoolVar(&o.jsonOutput, "json", false, "print one JSON object per event")
	fs.Usage = usageFunc(fs, "eventctl tail [flags] URL")
	if err := cli.Parse(fs, args, stdout, false); err != nil {
		return err
	}
	if err := checkTailArgs(fs, &o, headers); err != nil {
		return cli.Usage(err)
	}
	if token := strings.TrimSpace(getenv("EVENTCTL_TOKEN")); token != "" {
		if strings.ContainsFunc(token, func(r rune) bool { return r < ' ' || r == 0x7f }) {
			return cli.Usagef("EVENTCTL_TOKEN contains a control character or line break")
		}
		o.headers.Set("Authorization", "Bearer "+token)
	}
	o.client = &http.Client{} // no timeout: the stream is long-lived
	return tail(ctx, o, stdout, stderr)
}

// checkTailArgs checks the command line before the first request and fills o.url and
// o.headers: a URL that can never work is reported at once, not retried forever.
func checkTailArgs(fs *flag.FlagSet, o *tailOptions, headers headerList) error {
	if fs.NArg() != 1 {
		return fmt.Errorf("tail needs exactly one URL, got %d arguments (see %s -h)", fs.NArg(), fs.Name())
	}
	if err := checkStreamURL(fs.Arg(0)); err != nil {
		return err
	}
	o.url = fs.Arg(0)
	if o.retry <= 0 {
		return fmt.Errorf("--retry %v must be positive", o.retry)
	}
	if o.maxRetries < -1 {
		return fmt.Errorf("--max-reconnects %d: want -1 (never give up) or more", o.maxRetries)
	}
	o.headers = http.Header{}
	for _, h := range headers {
		name, value, ok := strings.Cut(h, ":")
		name, value = strings.TrimSpace(name), strings.TrimSpace(value)
		if !ok || !validHeaderName(name) || strings.ContainsAny(value, "\r\n") {
			return fmt.Errorf("--header %q: want \"Name: value\"", h)
		}
		o.headers.Add(name, value)
	}
	return nil
}

// checkStreamURL accepts an absolute http:// or https:// URL with a host.
func checkStreamURL(raw string) error {
	const want = "want http[s]://HOST[:PORT]/PATH?QUERY, e.g. http://localhost:8080/api/v1/events?team_id=42"
	u, err := url.Parse(raw)
	if err != nil {
		var urlErr *url.Error
		if errors.As(err, &urlErr) {
			err = urlErr.Err // without the URL, which may hold a token
		}
		return fmt.Errorf("URL is malformed (%v); %s", err, want)
	}
	switch {
	case u.Scheme == "":
		return errors.New("URL has no scheme; " + want)
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("URL scheme %q is not http or https; %s", u.Scheme, want)
	case u.Host == "" || u.Hostname() == "":
		return errors.New("URL has no host; " + want)
	}
	return nil
}

// validHeaderName reports whether name is an HTTP field name (RFC 9110 token).
func validHeaderName(name string) bool {
	if name == "" {
		return false
	}
	for _, c := range []byte(name) {
		if c <= ' ' || c >= 0x7f || strings.IndexByte("\"(),/:;<=>?@[\\]{}", c) >= 0 {
			return false
		}
	}
	return true
}

// errFinal is a response after which a browser would not reconnect either.
type errFinal struct {
	status int
	body   string
}

func (e *errFinal) Error() string {
	return fmt.Sprintf("server answered %d: %s", e.status, e.body)
}

// tail follows the stream like a browser's EventSource: it reconnects after the retry delay
// with Last-Event-ID on network errors and on the end of a stream, and stops for good on a
// status other than 200 (204 ends quietly) or a content type other than text/event-stream.
func tail(ctx context.Context, o tailOptions, stdout, stderr io.Writer) error {
	lastID, retry := o.lastEventID, o.retry
	failures := 0
	for {
		got, newRetry, err := tailOnce(ctx, o, &lastID, stdout)
		if newRetry >= 0 {
			retry = time.Duration(newRetry) * time.Millisecond
		}
		var final *errFinal
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.As(err, &final):
			if final.status == http.StatusNoContent {
				return nil
			}
			return err
		}
		if got > 0 {
			failures = 0
		} else {
			failures++
		}
		if o.maxRetries >= 0 && failures > o.maxRetries {
			return fmt.Errorf("gave up after %d reconnects without an event: %v", o.maxRetries, err)
		}
		reason := "stream ended"
		if err != nil {
			reason = err.Error()
		}
		fmt.Fprintf(stderr, "eventctl: %s; reconnecting in %v (Last-Event-ID %q)\n", reason, retry, lastID)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(retry):
		}
	}
}

// tailOnce reads one connection; it returns the events printed and the last retry: value
// (-1: none).
func tailOnce(ctx context.Context, o tailOptions, lastID *string, stdout io.Writer) (int, int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, o.url, nil)
	if err != nil {
		return 0, -1, &errFinal{status: 0, body: err.Error()}
	}
	req.Header = o.headers.Clone()
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Cache-Control", "no-cache")
	if *lastID != "" {
		req.Header.Set("Last-Event-ID", *lastID)
	}
	resp, err := o.client.Do(req)
	if err != nil {
		return 0, -1, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return 0, -1, &errFinal{status: resp.StatusCode, body: strings.TrimSpace(string(body))}
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "text/event-stream" {
		return 0, -1, &errFinal{status: resp.StatusCode, body: "content type " + resp.Header.Get("Content-Type") + " is not text/event-stream"}
	}
	dec := sse.NewDecoder(resp.Body, 16<<20)
	n := 0
	for {
		m, err := dec.Next()
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = nil
			}
			return n, dec.Retry(), err
		}
		*lastID = m.LastEventID
		n++
		printEvent(stdout, m, o.jsonOutput)
	}
}

func printEvent(w io.Writer, m sse.Message, asJSON bool) {
	if asJSON {
		b, _ := json.Marshal(struct {
			ID    string `json:"id"`
			Event string `json:"event"`
			Data  string `json:"data"`
		}{m.LastEventID, m.Name, m.Data})
		fmt.Fprintf(w, "%s\n", b)
		return
	}
	if m.Name == "gap" {
		fmt.Fprintf(w, "GAP %s (events were missed: refetch from the source of truth)\n", m.Data)
		return
	}
	fmt.Fprintf(w, "%s\t%s\n", m.LastEventID, strings.ReplaceAll(m.Data, "\n", "\n\t"))
}
