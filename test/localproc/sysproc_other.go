//go:build !unix

package localproc

import "os/exec"

// setSysProcAttr does nothing off Unix (Windows): no process groups here. The demo and the benchmark are
// run on Linux and macOS.
func setSysProcAttr(*exec.Cmd) {}

func killGroup(int) {}
