package contract

import (
	"testing"

	"github.com/eventstream-operator/eventstream-operator/api/events"
)

// TestDefaultBindingKeyMatchesTheTemplate: the default binding delivers exactly the routing
// keys of the default template.
func TestDefaultBindingKeyMatchesTheTemplate(t *testing.T) {
	if got := events.MustParseTemplate(DefaultRoutingKeyTemplate).BindingKey(); got != DefaultBindingKey {
		t.Errorf("the default template binds with %q, DefaultBindingKey is %q", got, DefaultBindingKey)
	}
}
