package rabbitmqtest

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"time"

	"github.com/eventstream-operator/eventstream-operator/test/poll"
)

// ConnectionNamed waits up to 15 s until the management API lists a connection whose
// client-provided name is name, and returns the broker's name for the first one.
func (n *Node) ConnectionNamed(t T, name string) string {
	t.Helper()
	var found []string
	if !poll.Within(context.Background(), 15*time.Second, 50*time.Millisecond, func() bool {
		found = n.connectionsNamed(name)
		return len(found) > 0
	}) {
		t.Fatalf("no connection named %q listed by the management API within 15s", name)
	}
	return found[0]
}

// CloseConnection closes the connection the broker calls name through the management API
// (a connection reset as the client sees it); false when the API did not close it.
func (n *Node) CloseConnection(name string) bool {
	del, err := http.NewRequest(http.MethodDelete, n.ManagementURI+"/api/connections/"+url.PathEscape(name), nil)
	if err != nil {
		return false
	}
	del.SetBasicAuth(n.Username, n.Password)
	del.Header.Set("X-Reason", "test: connection reset")
	r, err := http.DefaultClient.Do(del)
	if err != nil {
		return false
	}
	r.Body.Close()
	return r.StatusCode == http.StatusNoContent
}

// CloseConnectionsNamed waits (up to 15 s) until the management API lists connections whose
// client-provided name is name, and closes every one listed (several processes may use the
// name, e.g. the replicas of one stream). It fails the test when none could be closed.
func (n *Node) CloseConnectionsNamed(t T, name string) {
	t.Helper()
	closed := 0
	poll.Within(context.Background(), 15*time.Second, 50*time.Millisecond, func() bool {
		for _, c := range n.connectionsNamed(name) {
			if n.CloseConnection(c) {
				closed++
			}
		}
		return closed > 0
	})
	if closed == 0 {
		t.Fatalf("no connection named %q was closed through the management API within 15s", name)
	}
}

// connectionsNamed returns the broker's names of the listed connections whose client-provided
// name is name.
func (n *Node) connectionsNamed(name string) []string {
	req, err := http.NewRequest(http.MethodGet, n.ManagementURI+"/api/connections?columns=name,user_provided_name", nil)
	if err != nil {
		return nil
	}
	req.SetBasicAuth(n.Username, n.Password)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var conns []struct {
		Name             string `json:"name"`
		UserProvidedName string `json:"user_provided_name"`
	}
	if json.NewDecoder(resp.Body).Decode(&conns) != nil {
		return nil
	}
	var names []string
	for _, c := range conns {
		if c.UserProvidedName == name {
			names = append(names, c.Name)
		}
	}
	return names
}

// QueueStats is what the management API reports of a queue (refreshed every few seconds by
// the broker's statistics collection).
type QueueStats struct {
	Ready        int `json:"messages_ready"`
	Unacked      int `json:"messages_unacknowledged"`
	MessageStats struct {
		Ack        int `json:"ack"`
		DeliverGet int `json:"deliver_get"`
	} `json:"message_stats"`
}

// Queue returns the management API's figures for queue in the default vhost; ok is false when
// the API did not answer them.
func (n *Node) Queue(queue string) (QueueStats, bool) {
	var q QueueStats
	req, err := http.NewRequest(http.MethodGet, n.ManagementURI+"/api/queues/%2F/"+url.PathEscape(queue), nil)
	if err != nil {
		return q, false
	}
	req.SetBasicAuth(n.Username, n.Password)
	r, err := http.DefaultClient.Do(req)
	if err != nil {
		return q, false
	}
	defer r.Body.Close()
	if r.StatusCode != http.StatusOK {
		return q, false
	}
	return q, json.NewDecoder(r.Body).Decode(&q) == nil
}
