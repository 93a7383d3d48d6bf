// Package v1alpha1 holds the EventStream API: group sse.eventstream.dev, version v1alpha1.
// +kubebuilder:object:generate=true
// +groupName=sse.eventstream.dev
package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is the API group and version of EventStream.
	GroupVersion = schema.GroupVersion{Group: "sse.eventstream.dev", Version: "v1alpha1"}

	// SchemeBuilder registers this package's types with a runtime.Scheme.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds this package's types to a runtime.Scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
