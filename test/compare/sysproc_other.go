//go:build !linux

package main

import "os/exec"

// setSysProcAttr does nothing off Linux: there is no Pdeathsig, so children of a killed run may stay.
// The benchmark is meant for Linux (run.sh installs Debian's nginx).
func setSysProcAttr(*exec.Cmd) {}

func killGroup(int) {}
