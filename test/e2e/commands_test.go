//go:build e2e

package e2e

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"

	esv1 "github.com/eventstream-operator/eventstream-operator/api/v1alpha1"
	"github.com/eventstream-operator/eventstream-operator/test/kubetest"
)

// commandTimeout bounds one kubectl, helm or eventctl invocation.
const commandTimeout = 3 * time.Minute

// command describes one run of a binary. Stdin is never logged: it may hold a Secret.
type command struct {
	name  string
	args  []string
	stdin string
	env   []string
}

// run executes c and returns its stdout; the error holds stderr. The command line (never the
// environment or stdin) is logged to the Ginkgo writer.
func (c command) run() (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.name, c.args...)
	cmd.Dir = kubetest.ProjectRoot()
	if c.env != nil {
		cmd.Env = append(cmd.Environ(), c.env...)
	}
	if c.stdin != "" {
		cmd.Stdin = strings.NewReader(c.stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	fmt.Fprintf(GinkgoWriter, "$ %s %s  (%v)\n", filepath.Base(c.name), strings.Join(c.args, " "), time.Since(start).Round(time.Millisecond))
	if err != nil {
		return stdout.String(), fmt.Errorf("%s %s: %w\nstdout: %s\nstderr: %s",
			filepath.Base(c.name), strings.Join(c.args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String(), nil
}

// kubectl runs kubectl and fails the spec when it fails.
func kubectl(args ...string) string {
	GinkgoHelper()
	out, err := command{name: cfg.Kubectl, args: args}.run()
	Expect(err).NotTo(HaveOccurred())
	return out
}

// kubectlApply applies manifest (YAML, possibly several documents) in namespace.
func kubectlApply(namespace, manifest string) string {
	GinkgoHelper()
	out, err := command{name: cfg.Kubectl, args: []string{"apply", "-n", namespace, "-f", "-"}, stdin: manifest}.run()
	Expect(err).NotTo(HaveOccurred())
	return out
}

// helm runs the pinned helm and fails the spec when it fails.
func helm(args ...string) string {
	GinkgoHelper()
	out, err := command{name: cfg.Helm, args: args}.run()
	Expect(err).NotTo(HaveOccurred())
	return out
}

// randomSuffix is five lowercase hex digits for names of this run.
func randomSuffix() string { return fmt.Sprintf("%05x", rand.Uint32()&0xfffff) }

// getObject reads one object with kubectl into obj.
func getObject(namespace, kind, name string, obj any) error {
	out, err := command{name: cfg.Kubectl, args: []string{"get", kind, name, "-n", namespace, "-o", "json"}}.run()
	if err != nil {
		return err
	}
	return json.Unmarshal([]byte(out), obj)
}

// randomSecret is an HS256 key as a user would make it (48 random bytes, base64).
func randomSecret() string {
	key := make([]byte, 48)
	_, _ = crand.Read(key) // never fails (crypto/rand)
	return base64.StdEncoding.EncodeToString(key)
}

// mintToken mints a token for team with `eventctl token`, reading the key from the sample's
// JWT Secret the way the sample's comment shows (kubectl get secret … | eventctl token).
func mintToken(namespace, team string) string {
	GinkgoHelper()
	out, err := command{name: cfg.Eventctl, args: []string{"token", "--secret-file", "-", "--team", team, "--ttl", "2h"}, stdin: jwtKey(namespace)}.run()
	Expect(err).NotTo(HaveOccurred())
	token := strings.TrimSpace(out)
	Expect(strings.Count(token, ".")).To(Equal(2), "eventctl token prints only a JWT")
	return token
}

// getEventStream reads an EventStream with kubectl.
func getEventStream(namespace, name string) (*esv1.EventStream, error) {
	out, err := command{name: cfg.Kubectl, args: []string{"get", "eventstream", name, "-n", namespace, "-o", "json"}}.run()
	if err != nil {
		return nil, err
	}
	es := &esv1.EventStream{}
	if err := json.Unmarshal([]byte(out), es); err != nil {
		return nil, fmt.Errorf("decode EventStream %s/%s: %w", namespace, name, err)
	}
	return es, nil
}

// listPods lists the pods matching selector with kubectl.
func listPods(namespace, selector string) ([]corev1.Pod, error) {
	out, err := command{name: cfg.Kubectl, args: []string{"get", "pods", "-n", namespace, "-l", selector, "-o", "json"}}.run()
	if err != nil {
		return nil, err
	}
	var list corev1.PodList
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		return nil, fmt.Errorf("decode pods: %w", err)
	}
	return list.Items, nil
}

// readyPodNames are the names of the pods that are Ready and not being deleted.
func readyPodNames(pods []corev1.Pod) []string {
	var names []string
	for _, p := range pods {
		if p.DeletionTimestamp != nil {
			continue
		}
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
				names = append(names, p.Name)
			}
		}
	}
	return names
}

// printedColumns runs `kubectl get eventstreams NAME` (the table users see) and returns its
// columns by header, e.g. "READY" -> "True".
func printedColumns(namespace, name string) (map[string]string, error) {
	out, err := command{name: cfg.Kubectl, args: []string{"get", "eventstreams", name, "-n", namespace}}.run()
	if err != nil {
		return nil, err
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 {
		return nil, fmt.Errorf("want a header and one row, got:\n%s", out)
	}
	header, row := strings.Fields(lines[0]), strings.Fields(lines[1])
	if len(header) != len(row) {
		return nil, fmt.Errorf("header and row differ in columns (an empty value?):\n%s", out)
	}
	columns := make(map[string]string, len(header))
	for i, h := range header {
		columns[h] = row[i]
	}
	fmt.Fprintf(GinkgoWriter, "%s\n", out)
	return columns, nil
}

// bridgeSelector selects the bridge pods of an EventStream (the operator's labels).
func bridgeSelector(stream string) string {
	return "app.kubernetes.io/name=eventstream-bridge,app.kubernetes.io/instance=" + stream
}

// serviceURL is the bridge's SSE URL through its Service ClusterIP (kube-proxy routes it
// from the host).
func serviceURL(namespace, stream string) string {
	GinkgoHelper()
	ip := strings.TrimSpace(kubectl("get", "service", stream+"-bridge", "-n", namespace, "-o", "jsonpath={.spec.clusterIP}"))
	Expect(ip).NotTo(BeEmpty())
	return "http://" + ip + ":80"
}
