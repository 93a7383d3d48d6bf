//go:build ignore

// Command probe is a tiny static network checker used to prove the local cluster works
// (hack/cluster.sh smoke) without any base image:
//
//	probe serve ADDR        serve HTTP on ADDR; every path answers 200 "ok <hostname>\n"
//	probe dial HOST:PORT    open a TCP connection within 5 s; exit 0 on success, 1 otherwise
//	probe get URL           HTTP GET within 5 s; print the body, exit 0 on a 2xx answer
//	probe apiserver PATH    GET PATH from the API server the way in-cluster clients do:
//	                        https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT, the
//	                        pod's service-account token and CA; exit 0 on a 2xx answer
//
// Build it statically: CGO_ENABLED=0 go build -o probe hack/cluster/probe/main.go
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: probe serve ADDR | dial HOST:PORT | get URL | apiserver PATH")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "serve":
		err = serve(os.Args[2])
	case "dial":
		err = dial(os.Args[2])
	case "get":
		err = get(os.Args[2])
	case "apiserver":
		err = apiserver(os.Args[2])
	default:
		err = fmt.Errorf("unknown mode %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "probe:", err)
		os.Exit(1)
	}
}

// serve answers HTTP on addr until SIGTERM or SIGINT.
func serve(addr string) error {
	hostname, _ := os.Hostname()
	server := &http.Server{
		Addr:              addr,
		ReadHeaderTimeout: 5 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			fmt.Fprintf(w, "ok %s\n", hostname)
		}),
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	errs := make(chan error, 1)
	go func() { errs <- server.ListenAndServe() }()
	fmt.Println("probe: serving on", addr)
	select {
	case err := <-errs:
		return fmt.Errorf("serve %s: %w", addr, err)
	case <-ctx.Done():
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return server.Shutdown(shutdownCtx)
	}
}

func dial(address string) error {
	conn, err := net.DialTimeout("tcp", address, 5*time.Second)
	if err != nil {
		return fmt.Errorf("dial %s: %w", address, err)
	}
	fmt.Printf("probe: connected %s -> %s\n", conn.LocalAddr(), conn.RemoteAddr())
	return conn.Close()
}

func get(url string) error {
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		return fmt.Errorf("get %s: %w", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if err != nil {
		return fmt.Errorf("read %s: %w", url, err)
	}
	fmt.Print(string(body))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("get %s: status %s", url, resp.Status)
	}
	return nil
}

// serviceAccountDir is where the kubelet mounts a pod's service-account credentials.
const serviceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount"

func apiserver(path string) error {
	host, port := os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT")
	if host == "" || port == "" {
		return fmt.Errorf("KUBERNETES_SERVICE_HOST/PORT not set: not in a pod")
	}
	token, err := os.ReadFile(serviceAccountDir + "/token")
	if err != nil {
		return fmt.Errorf("read service-account token: %w", err)
	}
	caPEM, err := os.ReadFile(serviceAccountDir + "/ca.crt")
	if err != nil {
		return fmt.Errorf("read service-account CA: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		return fmt.Errorf("no certificate in %s/ca.crt", serviceAccountDir)
	}
	url := "https://" + net.JoinHostPort(host, port) + path
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("request %s: %w", url, err)
	}
	req.Header.Set("Authorization", "Bearer "+string(token))
	client := &http.Client{
		Timeout:   5 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}},
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("get %s: %w", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if err != nil {
		return fmt.Errorf("read %s: %w", url, err)
	}
	fmt.Printf("probe: %s %s\n%s\n", url, resp.Status, body)
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("get %s: status %s", url, resp.Status)
	}
	return nil
}
