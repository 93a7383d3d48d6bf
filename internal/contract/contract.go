// Package contract is what the operator and the bridge must agree on, spelled once: the
// bridge's flag names and environment keys the operator sets, the defaults both sides apply,
// the bridge's ports, the metric names the operator scrapes and the broker names derived from
// a queue's name.
//
// The operator builds the bridge's command line from it (controllers/workload_build.go), the
// bridge parses its flags with it (bridge/app, bridge/auth, bridge/cors). Tests hold the
// copies that cannot import it to it: controllers/contract_test.go parses the operator's
// args with the bridge's own flag set, and api/v1alpha1/crd_defaults_test.go checks every
// +kubebuilder:default marker of the generated CRD against the defaults here.
package contract
