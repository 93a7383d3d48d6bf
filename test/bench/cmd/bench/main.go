// Command bench runs the performance harness (make bench, docs/performance.md).
//
//	bench [flags]                         run the scenarios, print the table, update --out
//	bench wire --listen A --control C     the wire-limit server (started by bench itself)
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/eventstream-operator/eventstream-operator/test/bench"
)

func main() {
	var err error
	if len(os.Args) > 1 && os.Args[1] == "wire" {
		err = runWire(os.Args[2:])
	} else {
		err = run(os.Args[1:])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func runWire(args []string) error {
	fs := flag.NewFlagSet("wire", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:0", "SSE listen address")
	control := fs.String("control", "127.0.0.1:0", "control API listen address")
	if err := fs.Parse(args); err != nil {
		return err
	}
	srv := &bench.WireServer{}
	l, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	cl, err := net.Listen("tcp", *control)
	if err != nil {
		return err
	}
	go func() { _ = http.Serve(cl, srv.ControlHandler()) }()
	// The orchestrator kills this process when done; its listener ends with it.
	return srv.ServeStreams(l)
}

func run(args []string) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	bridgeBin := fs.String("bridge", "bin/bridge", "the bridge binary to measure")
	amqpURL := fs.String("amqp-url", os.Getenv("RABBITMQ_TEST_URI"), "AMQP URI of the private RabbitMQ node (default $RABBITMQ_TEST_URI)")
	scenarios := fs.String("scenarios", "consumer,idle,fanout,broadcast,churn,snapshot,operator", "scenarios to run (idle and fanout run together)")
	conns := fs.Int("conns", 10000, "SSE streams for idle, fan-out and broadcast")
	tenants := fs.Int("tenants", 1000, "tenants in the fan-out scenario")
	rates := fs.String("rates", "10000,12500,16000,20000,25000,32000,40000,50000,63000,80000,100000,125000,160000,200000,250000,320000,400000,500000",
		"offered deliveries per second of the fan-out steps (×1.25 apart: the sustained maximum is known within 25%)")
	step := fs.Duration("step", 4*time.Second, "duration of a fan-out step")
	reps := fs.Int("broadcast-reps", 30, "broadcast repetitions")
	churn := fs.Int("churn", 100000, "connects of the churn scenario")
	consumerEvents := fs.Int("consumer-events", 200000, "backlog of the consumer scenario")
	churnParallel := fs.Int("churn-parallel", 64, "concurrent connecting clients in the churn scenario")
	snapKeys := fs.Int("snapshot-keys", 10000, "keys in the snapshot scenario's store")
	snapClients := fs.Int("snapshot-clients", 1000, "clients reading the snapshot at once")
	sources := fs.Int("sources", 8, "loopback source addresses (127.0.0.2...) to spread connections over")
	out := fs.String("out", "docs/performance.md", "markdown file whose generated section is replaced (empty: print only)")
	bridgeFlags := fs.String("bridge-flags", "", "extra bridge flags, space-separated")
	var op operatorFlags
	op.bind(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	want := map[string]bool{}
	for _, s := range strings.Split(*scenarios, ",") {
		want[strings.TrimSpace(s)] = true
	}
	needBridge := want["consumer"] || want["idle"] || want["fanout"] || want["broadcast"] || want["churn"] || want["snapshot"]
	if needBridge && *amqpURL == "" {
		return errors.New("no --amqp-url and RABBITMQ_TEST_URI is unset (eval \"$(hack/rabbitmq.sh env)\")")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	env := &bench.Env{BridgeBinary: *bridgeBin, AMQPURL: *amqpURL, Sources: *sources,
		Secret: hex.EncodeToString(secret), Log: os.Stderr, RunID: strconv.FormatInt(time.Now().Unix(), 36)}
	if *bridgeFlags != "" {
		env.BridgeFlags = strings.Fields(*bridgeFlags)
	}
	var failed error
	res := &bench.Results{Machine: bench.Machine(runtime.Version(), runtime.NumCPU()), Date: time.Now()}

	if want["consumer"] {
		c, err := bench.Consumer(ctx, env, *consumerEvents)
		if err != nil {
			return fmt.Errorf("consumer: %w", err)
		}
		res.Consumer = &c
	}
	if want["idle"] || want["fanout"] || want["broadcast"] {
		self, err := os.Executable()
		if err != nil {
			return err
		}
		if env.Wire, err = bench.StartWireProcess(self); err != nil {
			return err
		}
		defer env.Wire.Stop()
	}
	if want["idle"] || want["fanout"] {
		cfg := bench.FanOutConfig{Conns: *conns, Tenants: *tenants, Step: *step, Parallel: 64}
		for _, r := range strings.Split(*rates, ",") {
			v, err := strconv.ParseFloat(strings.TrimSpace(r), 64)
			if err != nil {
				return fmt.Errorf("--rates: %w", err)
			}
			cfg.Rates = append(cfg.Rates, v)
		}
		if !want["fanout"] {
			cfg.Rates = nil
		}
		idle, br, wr, err := bench.IdleAndFanOut(ctx, env, cfg)
		if err != nil {
			return fmt.Errorf("idle/fan-out: %w", err)
		}
		res.Idle = &idle
		if want["fanout"] {
			res.Bridge, res.Wire = &br, &wr
		}
	}
	if want["broadcast"] {
		bc, err := bench.Broadcast(ctx, env, *conns, *reps, 64)
		if err != nil {
			return fmt.Errorf("broadcast: %w", err)
		}
		res.Broadcast = &bc
	}
	if want["churn"] {
		c, err := bench.Churn(ctx, env, *churn, *churnParallel, *tenants)
		if err != nil {
			return fmt.Errorf("churn: %w", err)
		}
		res.Churn = &c
	}
	if want["snapshot"] {
		s, err := bench.Snapshot(ctx, env, bench.SnapshotConfig{Keys: *snapKeys, Clients: *snapClients, Parallel: 64,
			LiveStreams: 100, LiveRate: 200, LiveFor: 5 * time.Second})
		if err != nil {
			return fmt.Errorf("snapshot: %w", err)
		}
		res.Snapshot = &s
	}
	if want["operator"] {
		rows, notes, err := runOperator(ctx, op)
		if err != nil {
			// The bridge figures are still worth writing; the run fails at the end.
			failed = fmt.Errorf("operator: %w", err)
			res.Notes = append(res.Notes, "Operator scenario failed: "+err.Error())
		}
		res.Operator = rows
		res.Notes = append(res.Notes, notes...)
	}

	md := res.Markdown()
	fmt.Println(md)
	if *out != "" {
		doc, err := os.ReadFile(*out)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		if err := os.WriteFile(*out, []byte(bench.ReplaceResults(string(doc), md)), 0o644); err != nil {
			return err
		}
		fmt.Fprintln(os.Stderr, "bench: results written to", *out)
	}
	return failed
}
