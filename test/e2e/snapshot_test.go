//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/eventstream-operator/eventstream-operator/bridge/sse"
)

// podSnapshot reads the snapshot a bridge pod serves for query (snapshot=1 is added): the
// snapshot events' data in order, and snapshot-end's data.
func podSnapshot(pod corev1.Pod, query string) (datas []string, end string, err error) {
	if pod.Status.PodIP == "" {
		return nil, "", fmt.Errorf("pod %s has no IP yet", pod.Name)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	url := "http://" + net.JoinHostPort(pod.Status.PodIP, "8080") + "/api/v1/events?snapshot=1&" + query
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, "", fmt.Errorf("pod %s answered %d", pod.Name, resp.StatusCode)
	}
	dec := sse.NewDecoder(resp.Body, 0)
	for {
		m, err := dec.Next()
		if err != nil {
			return datas, "", fmt.Errorf("pod %s: %w", pod.Name, err)
		}
		switch m.Name {
		case "snapshot":
			datas = append(datas, m.Data)
		case "snapshot-end":
			return datas, m.Data, nil
		}
	}
}
