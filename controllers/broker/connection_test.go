package broker

import (
	"strings"
	"testing"
)

func TestConnectionFromURIs(t *testing.T) {
	tests := []struct {
		name, amqp, mgmt string
		want             Connection
		wantErr          string
	}{
		{name: "derived http", amqp: "amqp://u:p@rabbitmq:5672/", want: Connection{ManagementURL: "http://rabbitmq:15672", Username: "u", Password: "p", VHost: "/"}},
		{name: "derived https", amqp: "amqps://u:p@rmq.example.com/prod", want: Connection{ManagementURL: "https://rmq.example.com:15671", Username: "u", Password: "p", VHost: "prod"}},
		{name: "escaped vhost", amqp: "amqp://u:p@h/%2Fteam", want: Connection{ManagementURL: "http://h:15672", Username: "u", Password: "p", VHost: "/team"}},
		{name: "no credentials", amqp: "amqp://h", want: Connection{ManagementURL: "http://h:15672", Username: "guest", Password: "guest", VHost: "/"}},
		{name: "ipv6", amqp: "amqp://u:p@[::1]:5672/", want: Connection{ManagementURL: "http://[::1]:15672", Username: "u", Password: "p", VHost: "/"}},
		{name: "explicit management", amqp: "amqp://u:p@h/", mgmt: "https://mgmt.example.com:443/", want: Connection{ManagementURL: "https://mgmt.example.com:443", Username: "u", Password: "p", VHost: "/"}},
		{name: "management credentials win", amqp: "amqp://u:p@h/", mgmt: "http://admin:s3cret@m:15672", want: Connection{ManagementURL: "http://m:15672", Username: "admin", Password: "s3cret", VHost: "/"}},
		{name: "wrong scheme", amqp: "http://u:hunter2@h/", wantErr: "amqp://"},
		{name: "no host", amqp: "amqp:///vhost", wantErr: "no host"},
		{name: "bad management", amqp: "amqp://h/", mgmt: "ftp://x", wantErr: "managementURI"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ConnectionFromURIs(tt.amqp, tt.mgmt)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want it to mention %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "hunter2") {
					t.Fatalf("error leaks the password: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.ManagementURL != tt.want.ManagementURL || got.Username != tt.want.Username ||
				got.Password != tt.want.Password || got.VHost != tt.want.VHost {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestQualifyServiceHost(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"http://rabbitmq:15672", "http://rabbitmq.shop.svc:15672"},
		{"https://rabbitmq", "https://rabbitmq.shop.svc"},
		{"http://rabbitmq.broker:15672", "http://rabbitmq.broker:15672"},
		{"http://rabbitmq.broker.svc.cluster.local:15672", "http://rabbitmq.broker.svc.cluster.local:15672"},
		{"http://10.88.0.1:21772", "http://10.88.0.1:21772"},
		{"http://[::1]:15672", "http://[::1]:15672"},
		{"http://localhost:15672", "http://localhost:15672"},
		{"http://rabbitmq:15672/prefix", "http://rabbitmq.shop.svc:15672/prefix"},
	} {
		if got := QualifyServiceHost(tt.in, "shop"); got != tt.want {
			t.Errorf("QualifyServiceHost(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
