package main

import (
	"io"

	"github.com/dynup/dynup/envoy/bootstrap"
)

// runBootstrap is `dynup bootstrap`: it prints an Envoy bootstrap pointing at dynup and returns the exit
// status. Its flags, their checks and its tests live in envoy/bootstrap, next to the checked-in bootstraps
// the same generator writes.
func runBootstrap(args []string, stdout, stderr io.Writer) int {
	return bootstrap.Command(args, stdout, stderr)
}
