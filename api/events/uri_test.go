package events

import (
	"strings"
	"testing"
)

// TestValidateAMQPURI: AMQP URIs pass; anything else is refused with a reason, and the
// password never appears in the error.
func TestValidateAMQPURI(t *testing.T) {
	tests := []struct {
		uri     string
		wantErr string
	}{
		{uri: "amqp://user:s3cret@rabbitmq:5672/"},
		{uri: "amqps://user:s3cret@rabbitmq/vhost?heartbeat=10"},
		{uri: "amqp://rabbitmq"},
		{uri: "", wantErr: "is empty"},
		{uri: "user:s3cret@rabbitmq:5672", wantErr: "has no scheme"},
		{uri: "http://user:s3cret@rabbitmq:15672/", wantErr: `has scheme "http"`},
		{uri: "AMQP://user:s3cret@rabbitmq/", wantErr: `has scheme "AMQP"`},
		{uri: "user:s3cret@host://x", wantErr: "no valid scheme"},
		{uri: "amqp://user:s3cret@rabbitmq:port/", wantErr: "not a valid URI"},
		{uri: "amqp://user:s3cret%zz@rabbitmq/", wantErr: "percent-encoded"},
		{uri: "amqp://user:s3cret@rabbitmq/\n", wantErr: "not a valid URI"},
		{uri: "amqp://user:s3cret @rabbitmq/", wantErr: "whitespace"},
		{uri: "amqp://user:s3cret@rabbitmq/?heartbeat=x", wantErr: "not a valid AMQP URI"},
	}
	for _, tt := range tests {
		t.Run(tt.uri, func(t *testing.T) {
			err := ValidateAMQPURI(tt.uri)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("ValidateAMQPURI(%q) = %v, want nil", tt.uri, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("ValidateAMQPURI(%q) = %v, want an error containing %q", tt.uri, err, tt.wantErr)
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Fatalf("error repeats the password: %v", err)
			}
		})
	}
}
