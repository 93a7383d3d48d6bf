//go:build e2e

package e2e

import (
	"errors"
	"net/http"
	"net/url"
	"sort"

	rabbithole "github.com/michaelklishin/rabbit-hole/v2"
	. "github.com/onsi/gomega"
)

// managementClient talks to the dedicated node's management API from the host.
func managementClient() *rabbithole.Client {
	u, err := url.Parse(cfg.ManagementURI)
	Expect(err).NotTo(HaveOccurred())
	user, password := "guest", "guest"
	if u.User != nil {
		user = u.User.Username()
		password, _ = u.User.Password()
		u.User = nil
	}
	c, err := rabbithole.NewClient(u.String(), user, password)
	Expect(err).NotTo(HaveOccurred())
	return c
}

// isNotFound reports a 404 of the management API.
func isNotFound(err error) bool {
	var res rabbithole.ErrorResponse
	if errors.As(err, &res) {
		return res.StatusCode == http.StatusNotFound
	}
	var ptr *rabbithole.ErrorResponse
	return errors.As(err, &ptr) && ptr.StatusCode == http.StatusNotFound
}

// bindingKeysFrom are the routing keys binding queue to exchange, sorted.
func bindingKeysFrom(mgmt *rabbithole.Client, exchange, queue string) ([]string, error) {
	bindings, err := mgmt.ListQueueBindings("/", queue)
	if err != nil {
		return nil, err
	}
	var keys []string
	for _, b := range bindings {
		if b.Source == exchange {
			keys = append(keys, b.RoutingKey)
		}
	}
	sort.Strings(keys)
	return keys, nil
}
