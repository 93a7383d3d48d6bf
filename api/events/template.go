// Package events holds what publishers, the bridge and the operator share about events:
// the routing-key template, the event JSON contract and a publisher with confirms.
// It is imported by every side, never copied.
package events

import (
	"errors"
	"fmt"
	"strings"
)

// MaxRoutingKeyBytes is AMQP's limit on a routing key (a short string).
const MaxRoutingKeyBytes = 255

// Template is a parsed routing-key template such as "team.{team_id}.job.{job_id}.status".
// Segments are separated by '.'; a placeholder is a whole segment "{name}" with name matching
// [a-z][a-z0-9_]*. A Template is immutable and safe for concurrent use.
type Template struct {
	raw          string
	segments     []templateSegment
	placeholders []string
}

type templateSegment struct {
	literal     string
	placeholder int // index into placeholders, or -1 for a literal segment
}

// ParseTemplate parses a routing-key template. It rejects empty segments, placeholders that
// are not a whole segment ("job-{id}"), duplicate placeholder names, and the topic wildcards
// '*' and '#', which belong to binding keys, not to templates.
func ParseTemplate(s string) (*Template, error) {
	if s == "" {
		return nil, errors.New("routing-key template is empty")
	}
	if len(s) > MaxRoutingKeyBytes {
		return nil, fmt.Errorf("routing-key template is %d bytes, more than %d", len(s), MaxRoutingKeyBytes)
	}
	t := &Template{raw: s}
	seen := map[string]bool{}
	for i, seg := range strings.Split(s, ".") {
		switch {
		case seg == "":
			return nil, fmt.Errorf("routing-key template %q: segment %d is empty", s, i+1)
		case strings.ContainsAny(seg, "*#"):
			return nil, fmt.Errorf("routing-key template %q: segment %q: wildcards '*' and '#' belong in binding keys, not templates", s, seg)
		case strings.HasPrefix(seg, "{") && strings.HasSuffix(seg, "}"):
			name := seg[1 : len(seg)-1]
			if !validPlaceholderName(name) {
				return nil, fmt.Errorf("routing-key template %q: placeholder %q: name must match [a-z][a-z0-9_]*", s, seg)
			}
			if seen[name] {
				return nil, fmt.Errorf("routing-key template %q: placeholder {%s} appears twice", s, name)
			}
			seen[name] = true
			t.segments = append(t.segments, templateSegment{placeholder: len(t.placeholders)})
			t.placeholders = append(t.placeholders, name)
		case strings.ContainsAny(seg, "{}"):
			return nil, fmt.Errorf("routing-key template %q: segment %q: a placeholder must be a whole segment like {name}", s, seg)
		default:
			t.segments = append(t.segments, templateSegment{literal: seg, placeholder: -1})
		}
	}
	return t, nil
}

// MustParseTemplate is ParseTemplate for constants; it panics on error.
func MustParseTemplate(s string) *Template {
	t, err := ParseTemplate(s)
	if err != nil {
		panic(err)
	}
	return t
}

func validPlaceholderName(name string) bool {
	if name == "" || name[0] < 'a' || name[0] > 'z' {
		return false
	}
	for i := 1; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// String returns the template as it was parsed.
func (t *Template) String() string { return t.raw }

// Placeholders returns the placeholder names in template order. The caller may modify the
// returned slice.
func (t *Template) Placeholders() []string { return append([]string(nil), t.placeholders...) }

// PlaceholderIndex returns the position of name in Placeholders, or -1.
func (t *Template) PlaceholderIndex(name string) int {
	for i, p := range t.placeholders {
		if p == name {
			return i
		}
	}
	return -1
}

// Match reports whether routingKey fits the template and returns the placeholder values in
// placeholder order. A placeholder matches exactly one non-empty segment (never a '.').
func (t *Template) Match(routingKey string) (values []string, ok bool) {
	values = make([]string, len(t.placeholders))
	if !t.MatchInto(routingKey, values) {
		return nil, false
	}
	return values, true
}

// MatchInto is Match without allocation: values must have len(Placeholders()) elements and
// receives the placeholder values (substrings of routingKey). On false, values is garbage.
func (t *Template) MatchInto(routingKey string, values []string) bool {
	if len(values) != len(t.placeholders) || len(routingKey) > MaxRoutingKeyBytes {
		return false
	}
	rest := routingKey
	for i, seg := range t.segments {
		var part string
		if i == len(t.segments)-1 {
			part, rest = rest, ""
			if strings.IndexByte(part, '.') >= 0 {
				return false
			}
		} else {
			dot := strings.IndexByte(rest, '.')
			if dot < 0 {
				return false
			}
			part, rest = rest[:dot], rest[dot+1:]
		}
		if seg.placeholder < 0 {
			if part != seg.literal {
				return false
			}
			continue
		}
		if part == "" {
			return false
		}
		values[seg.placeholder] = part
	}
	return true
}

// Render builds a routing key from placeholder values. Every placeholder needs a non-empty
// value without '.', '*' or '#'; values for names that are not placeholders are an error too,
// so a typo never silently publishes to the wrong key.
func (t *Template) Render(values map[string]string) (string, error) {
	for name := range values {
		if t.PlaceholderIndex(name) < 0 {
			return "", fmt.Errorf("routing-key template %q has no placeholder {%s}", t.raw, name)
		}
	}
	var b strings.Builder
	for i, seg := range t.segments {
		if i > 0 {
			b.WriteByte('.')
		}
		if seg.placeholder < 0 {
			b.WriteString(seg.literal)
			continue
		}
		name := t.placeholders[seg.placeholder]
		v, ok := values[name]
		if !ok || v == "" {
			return "", fmt.Errorf("routing-key template %q: no value for {%s}", t.raw, name)
		}
		if err := ValidSegmentValue(v); err != nil {
			return "", fmt.Errorf("routing-key template %q: {%s}: %w", t.raw, name, err)
		}
		b.WriteString(v)
	}
	if b.Len() > MaxRoutingKeyBytes {
		return "", fmt.Errorf("routing key is %d bytes, more than %d", b.Len(), MaxRoutingKeyBytes)
	}
	return b.String(), nil
}

// ValidSegmentValue checks a value that fills one routing-key segment: non-empty, no '.',
// no topic wildcard, at most MaxRoutingKeyBytes.
func ValidSegmentValue(v string) error {
	switch {
	case v == "":
		return errors.New("value is empty")
	case len(v) > MaxRoutingKeyBytes:
		return fmt.Errorf("value is %d bytes, more than %d", len(v), MaxRoutingKeyBytes)
	case strings.ContainsAny(v, ".*#"):
		return fmt.Errorf("value %q contains '.', '*' or '#'", v)
	}
	return nil
}

// BindingKey returns the topic binding key that matches every routing key of the template:
// each placeholder becomes '*'.
func (t *Template) BindingKey() string {
	var b strings.Builder
	for i, seg := range t.segments {
		if i > 0 {
			b.WriteByte('.')
		}
		if seg.placeholder < 0 {
			b.WriteString(seg.literal)
		} else {
			b.WriteByte('*')
		}
	}
	return b.String()
}

// ValidBindingKey checks a topic-exchange binding pattern: words separated by '.', where a
// word is '*', '#', or non-empty text without '*' or '#'. The empty key (which would match only
// the empty routing key) and empty words ("a..b", ".a") are rejected.
func ValidBindingKey(s string) error {
	if len(s) > MaxRoutingKeyBytes {
		return fmt.Errorf("binding key is %d bytes, more than %d", len(s), MaxRoutingKeyBytes)
	}
	if s == "" {
		return errors.New("binding key is empty")
	}
	for i, word := range strings.Split(s, ".") {
		switch {
		case word == "*" || word == "#":
		case word == "":
			return fmt.Errorf("binding key %q: word %d is empty", s, i+1)
		case strings.ContainsAny(word, "*#"):
			return fmt.Errorf("binding key %q: word %q: '*' and '#' must be whole words", s, word)
		}
	}
	return nil
}
