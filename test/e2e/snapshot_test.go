//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"slices"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"

	"github.com/eventstream-operator/eventstream-operator/api/events"
	"github.com/eventstream-operator/eventstream-operator/bridge/sse"
)

// podSnapshot reads the snapshot a bridge pod serves for query (snapshot=1 is added): the
// snapshot events' data in order, and snapshot-end's data.
func podSnapshot(pod corev1.Pod, query string) (datas []string, end string, err error) {
	if pod.Status.PodIP == "" {
		return nil, "", fmt.Errorf("pod %s has no IP yet", pod.Name)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	url := "http://" + net.JoinHostPort(pod.Status.PodIP, "8080") + "/api/v1/events?snapshot=1&" + query
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, "", fmt.Errorf("pod %s answered %d", pod.Name, resp.StatusCode)
	}
	dec := sse.NewDecoder(resp.Body, 0)
	for {
		m, err := dec.Next()
		if err != nil {
			return datas, "", fmt.Errorf("pod %s: %w", pod.Name, err)
		}
		switch m.Name {
		case "snapshot":
			datas = append(datas, m.Data)
		case "snapshot-end":
			return datas, m.Data, nil
		}
	}
}

// jobStatus is what a job list shows of one job.
type jobStatus struct{ Status, Message string }

// jobList is the list a page shows after applying evs in order: "team/job" → the job's latest
// status, as examples/nextjs renders it.
func jobList(evs []events.Event) map[string]jobStatus {
	list := make(map[string]jobStatus, len(evs))
	for _, ev := range evs {
		list[ev.TeamID+"/"+ev.JobID] = jobStatus{Status: ev.Status, Message: ev.Message}
	}
	return list
}

// jobEvents are the job events a page received, snapshot and live, markers left out, in order.
func jobEvents(all []received) []events.Event {
	var out []events.Event
	for _, r := range all {
		if !r.isMarker() {
			out = append(out, r.Event)
		}
	}
	return out
}

// firstRender is what a snapshot=1 page received up to its first snapshot-end (which end is)
// — the events its first render shows; ok is false until snapshot-end arrived.
func firstRender(all []received) (before []received, end received, ok bool) {
	if i := slices.IndexFunc(all, isSnapshotEnd); i >= 0 {
		return all[:i], all[i], true
	}
	return all, received{}, false
}

// routingKey is ev's routing key under the default template (team.{team_id}.job.{job_id}.status).
func routingKey(ev events.Event) string { return "team." + ev.TeamID + ".job." + ev.JobID + ".status" }

// expectFirstRender waits until tab's first snapshot has ended and checks that it is exactly
// want: one snapshot event per job, in routing-key order, nothing live before snapshot-end.
func expectFirstRender(tab *browserTab, want map[string]jobStatus) {
	GinkgoHelper()
	Eventually(func(g Gomega) {
		all, err := tab.received()
		g.Expect(err).NotTo(HaveOccurred())
		before, end, ok := firstRender(all)
		g.Expect(ok).To(BeTrue(), "snapshot-end arrived")
		var names, keys []string
		for _, r := range before {
			names = append(names, r.Name)
			keys = append(keys, routingKey(r.Event))
		}
		g.Expect(names).To(HaveEach("snapshot"), "only snapshot events before snapshot-end")
		snapshot := jobEvents(before)
		g.Expect(jobList(snapshot)).To(Equal(want), "the first render is the latest status of each job")
		g.Expect(snapshot).To(HaveLen(len(want)), "one snapshot event per job")
		g.Expect(slices.IsSorted(keys)).To(BeTrue(), "snapshot in routing-key order: %v", keys)
		g.Expect(end.Data).To(MatchJSON(fmt.Sprintf(`{"keys":%d,"partial":false}`, len(want))))
		g.Expect(end.ID).NotTo(BeEmpty(), "snapshot-end carries the position the snapshot reflects")
	}).Should(Succeed())
}

// expectPageShows waits until the job list tab shows (its snapshot and live events applied in
// order) is want and its newest event is last, received live.
func expectPageShows(tab *browserTab, want map[string]jobStatus, last events.Event) {
	GinkgoHelper()
	Eventually(func(g Gomega) {
		all, err := tab.received()
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(jobList(jobEvents(all))).To(Equal(want))
		g.Expect(all).NotTo(BeEmpty())
		newest := all[len(all)-1]
		g.Expect(newest.Name).To(Equal("message"), "the newest event arrived live")
		g.Expect(newest.Event.ID).To(Equal(last.ID))
	}).Should(Succeed())
}

func isSnapshotEnd(r received) bool { return r.Name == "snapshot-end" }
