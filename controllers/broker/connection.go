package broker

import (
	"fmt"
	"net"
	"net/url"
	"strings"
)

// ConnectionFromURIs builds a Connection from the AMQP URI of a connection Secret and, when
// given, its management URI. Without a management URI the management API is assumed on the
// AMQP host: port 15672 over http for amqp, 15671 over https for amqps. Credentials come from
// the AMQP URI unless the management URI carries its own. Errors never include the URIs,
// which hold credentials.
func ConnectionFromURIs(amqpURI, managementURI string) (Connection, error) {
	u, err := url.Parse(amqpURI)
	if err != nil {
		return Connection{}, fmt.Errorf("uri is not a valid URL")
	}
	var scheme, port string
	switch u.Scheme {
	case "amqp":
		scheme, port = "http", "15672"
	case "amqps":
		scheme, port = "https", "15671"
	default:
		return Connection{}, fmt.Errorf("uri must start with amqp:// or amqps://, not %q", u.Scheme+"://")
	}
	if u.Hostname() == "" {
		return Connection{}, fmt.Errorf("uri has no host")
	}
	conn := Connection{Username: "guest", Password: "guest", VHost: "/"}
	if u.User != nil {
		conn.Username = u.User.Username()
		if p, ok := u.User.Password(); ok {
			conn.Password = p
		}
	}
	if path := strings.TrimPrefix(u.Path, "/"); path != "" {
		conn.VHost = path // url.Parse has already unescaped %2F and friends
	}
	if managementURI == "" {
		conn.ManagementURL = scheme + "://" + net.JoinHostPort(u.Hostname(), port)
		return conn, nil
	}
	m, err := url.Parse(managementURI)
	if err != nil || (m.Scheme != "http" && m.Scheme != "https") || m.Host == "" {
		return Connection{}, fmt.Errorf("managementURI must be an http:// or https:// URL with a host")
	}
	if m.User != nil {
		conn.Username = m.User.Username()
		if p, ok := m.User.Password(); ok {
			conn.Password = p
		}
		m.User = nil
	}
	conn.ManagementURL = strings.TrimSuffix(m.String(), "/")
	return conn, nil
}

// QualifyServiceHost makes a management URL with a short host name (a Kubernetes Service name
// such as "rabbitmq", no dot) resolve in the stream's namespace, as it does for the stream's
// bridge pods: http://rabbitmq:15672 becomes http://rabbitmq.<namespace>.svc:15672. The
// operator runs in a namespace of its own, where the short name would resolve to another
// Service or to nothing. IP addresses, localhost and names with a dot are left alone. With
// https the broker's certificate must name the qualified host.
func QualifyServiceHost(managementURL, namespace string) string {
	u, err := url.Parse(managementURL)
	if err != nil || namespace == "" {
		return managementURL
	}
	host := u.Hostname()
	if host == "" || strings.Contains(host, ".") || host == "localhost" || net.ParseIP(host) != nil {
		return managementURL
	}
	qualified := host + "." + namespace + ".svc"
	if port := u.Port(); port != "" {
		qualified = net.JoinHostPort(qualified, port)
	}
	u.Host = qualified
	return u.String()
}
