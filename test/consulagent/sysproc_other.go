//go:build !linux

package consulagent

import "os/exec"

func setSysProcAttr(*exec.Cmd) {}
