// Package broker is the operator's narrow view of a RabbitMQ broker: the topology operations
// the EventStream reconciler needs, over the management HTTP API.
//
// Every error is either ErrNotFound (the object does not exist), wraps ErrUnreachable (the
// broker could not be reached or refused the credentials: retry later), or is a *BrokerError
// (the broker answered a request with an error). Errors never contain credentials.
package broker

import (
	"context"
	"errors"
	"fmt"
)

// ErrNotFound means the requested object does not exist on the broker.
var ErrNotFound = errors.New("not found")

// ErrUnreachable means the management API could not be reached, timed out, or rejected the
// credentials.
var ErrUnreachable = errors.New("broker unreachable")

// BrokerError is an error answer of the broker.
type BrokerError struct {
	Operation  string
	StatusCode int
	Message    string
}

func (e *BrokerError) Error() string {
	return fmt.Sprintf("%s: broker answered %d: %s", e.Operation, e.StatusCode, e.Message)
}

// Exchange is an exchange as the broker reports it.
type Exchange struct {
	Name    string
	Type    string
	Durable bool
}

// Queue is a queue as the broker reports it, with its current figures.
type Queue struct {
	Name      string
	Type      string
	Durable   bool
	Arguments map[string]any

	MessagesReady          int64
	MessagesUnacknowledged int64
	Messages               int64
	Consumers              int64
}

// Binding routes messages from an exchange to a queue.
type Binding struct {
	Source     string
	Queue      string
	RoutingKey string
	// PropertiesKey identifies an existing binding for deletion; empty when declaring.
	PropertiesKey string
}

// Policy is a RabbitMQ policy on queues.
type Policy struct {
	Name       string
	Pattern    string
	ApplyTo    string
	Priority   int
	Definition map[string]any
}

// Client is what the reconciler needs from a broker. All methods are scoped to the virtual
// host of the connection the client was made for.
type Client interface {
	GetExchange(ctx context.Context, name string) (*Exchange, error)
	// ListExchanges lists the exchanges of the virtual host.
	ListExchanges(ctx context.Context) ([]Exchange, error)
	DeclareExchange(ctx context.Context, name, kind string) error
	DeleteExchange(ctx context.Context, name string) error

	GetQueue(ctx context.Context, name string) (*Queue, error)
	// ListQueues lists the queues of the virtual host with their figures.
	ListQueues(ctx context.Context) ([]Queue, error)
	// DeclareQueue declares a durable queue whose only argument is x-queue-type.
	DeclareQueue(ctx context.Context, name, queueType string) error
	DeleteQueue(ctx context.Context, name string) error

	ListQueueBindings(ctx context.Context, queue string) ([]Binding, error)
	ListExchangeBindings(ctx context.Context, exchange string) ([]Binding, error)
	// ListBindings lists the virtual host's bindings to queues.
	ListBindings(ctx context.Context) ([]Binding, error)
	Bind(ctx context.Context, b Binding) error
	Unbind(ctx context.Context, b Binding) error

	GetPolicy(ctx context.Context, name string) (*Policy, error)
	// ListPolicies lists the policies of the virtual host (not operator policies).
	ListPolicies(ctx context.Context) ([]Policy, error)
	PutPolicy(ctx context.Context, p Policy) error
	DeletePolicy(ctx context.Context, name string) error

	// Declare declares the exchanges (durable, of their Type), queues (durable, whose only
	// argument is x-queue-type), bindings and policies of d, in one request (a definitions
	// import) when the user may import (RabbitMQ's administrator tag), else one request each.
	// Check existing objects first: the import leaves exchanges and queues that exist already
	// as they are, even when they differ, where a single declaration answers 400. Existing
	// bindings are kept; policies are written over.
	Declare(ctx context.Context, d Declarations) error
}

// Declarations are objects to declare together with Client.Declare.
type Declarations struct {
	Exchanges []Exchange
	Queues    []Queue
	Bindings  []Binding
	Policies  []Policy
}

// Empty reports whether there is nothing to declare.
func (d Declarations) Empty() bool {
	return len(d.Exchanges) == 0 && len(d.Queues) == 0 && len(d.Bindings) == 0 && len(d.Policies) == 0
}

// Connection is where a broker's management API is and how to authenticate to it.
type Connection struct {
	// ManagementURL is the management API's base URL, http(s)://host:port.
	ManagementURL string
	Username      string
	Password      string
	VHost         string
	// CAPEM, when set, is the CA bundle that signs the management API's certificate.
	CAPEM []byte
}

// Factory makes a Client for a connection.
type Factory func(Connection) (Client, error)
