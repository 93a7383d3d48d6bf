// Package cli gives the project's binaries the conventions of command-line tools:
// -h/--help prints the usage on stdout and exits 0, --version prints the version on stdout and
// exits 0, a usage error (unknown flag, bad value, wrong arguments, unknown command) is printed
// on stderr and exits 2, any other failure exits 1.
package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/eventstream-operator/eventstream-operator/internal/version"
)

// Exit codes.
const (
	ExitOK      = 0
	ExitFailure = 1
	ExitUsage   = 2
)

// UsageError is a problem with the command line or the configuration given at start, found
// before any work was done. The binary exits with ExitUsage.
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

// Usage marks err as a usage error; nil stays nil.
func Usage(err error) error {
	if err == nil {
		return nil
	}
	return &UsageError{Err: err}
}

// Usagef returns a usage error with a formatted message.
func Usagef(format string, args ...any) error {
	return &UsageError{Err: fmt.Errorf(format, args...)}
}

// ErrVersion is returned by Parse after it printed the version; the caller exits 0.
var ErrVersion = errors.New("version printed")

// Parse parses args into fs. It returns:
//   - flag.ErrHelp after printing fs's usage to stdout (for -h or --help);
//   - ErrVersion after printing version.Version to stdout, when withVersion and --version is
//     given (Parse then defines the --version flag on fs);
//   - a *UsageError for an unknown flag or a bad value, whose message names the flag and
//     tells how to get help;
//   - nil otherwise: the remaining arguments are fs.Args().
//
// fs must have been created with flag.ContinueOnError; Parse sets its output and only prints
// on stdout.
func Parse(fs *flag.FlagSet, args []string, stdout io.Writer, withVersion bool) error {
	var showVersion *bool
	if withVersion {
		showVersion = fs.Bool("version", false, "print the version and exit")
	}
	// The flag package prints errors and the usage to its output; errors are returned instead,
	// so that the caller prints them once, and help goes to stdout.
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		fs.SetOutput(stdout)
		fs.Usage()
		return flag.ErrHelp
	}
	if err != nil {
		return Usagef("%w (see %s -h)", err, fs.Name())
	}
	if showVersion != nil && *showVersion {
		fmt.Fprintln(stdout, version.Version)
		return ErrVersion
	}
	return nil
}

// NoArgs returns a usage error when fs has positional arguments left after parsing.
func NoArgs(fs *flag.FlagSet) error {
	if fs.NArg() > 0 {
		return Usagef("unexpected argument %q (%s takes only flags; see %s -h)", fs.Arg(0), fs.Name(), fs.Name())
	}
	return nil
}

// Exit prints err on stderr prefixed by name, unless it is flag.ErrHelp or ErrVersion, and
// returns the exit code: ExitOK for nil, flag.ErrHelp and ErrVersion, ExitUsage for a
// *UsageError, ExitFailure otherwise.
func Exit(name string, err error, stderr io.Writer) int {
	if err == nil || errors.Is(err, flag.ErrHelp) || errors.Is(err, ErrVersion) {
		return ExitOK
	}
	fmt.Fprintf(stderr, "%s: %s\n", name, strings.TrimRight(err.Error(), "\n"))
	var usage *UsageError
	if errors.As(err, &usage) {
		return ExitUsage
	}
	return ExitFailure
}
