package main

import (
	"context"
	"errors"
	"flag"
	"time"
)

type operatorFlags struct {
	streams int
	quiet   time.Duration
	binary  string
}

func (o *operatorFlags) bind(fs *flag.FlagSet) {
	fs.IntVar(&o.streams, "operator-streams", 500, "EventStreams applied at once in the operator scenario")
	fs.DurationVar(&o.quiet, "operator-quiet", 2*time.Minute, "quiet period after all are TopologyReady, counting status writes (the issue's full run: 5m)")
	fs.StringVar(&o.binary, "operator", "bin/operator", "the operator binary")
}

func runOperator(ctx context.Context, o operatorFlags) ([][]string, []string, error) {
	return nil, nil, errors.New("not implemented yet")
}
