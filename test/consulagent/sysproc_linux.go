package consulagent

import (
	"os/exec"
	"syscall"
)

// setSysProcAttr makes the kernel kill the agent if the thread that started it dies (see startProcess),
// and puts it in its own process group so a Ctrl-C meant for `go test` reaches it only through Stop.
func setSysProcAttr(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
}
