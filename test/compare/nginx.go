package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/dynup/dynup/test/localproc"
)

// The seed's first solution, as it ran in production: consul-template watches the service in Consul, renders
// nginx's upstream block from it and runs `nginx -s reload` each time the file changes. Everything except the
// paths and the loopback listen address is nginx's and consul-template's defaults, plus upstream keep-alive
// (what a production nginx in front of backends has).

// upstreamTemplate is the consul-template template. `service` lists the passing instances, as dynup does.
// nginx refuses an upstream without servers, so an empty service renders one that is down (502s).
const upstreamTemplate = `upstream bench {
{{- range service "%s" }}
    server {{ .Address }}:{{ .Port }};
{{- else }}
    server 127.0.0.1:9 down;
{{- end }}
    keepalive 16;
}
`

// nginxConf keeps every file nginx writes (pid, logs, temp files) in the run directory, so the system's
// nginx (if one runs) is untouched, and runs in the foreground as this program's child.
const nginxConf = `daemon off;
worker_processes auto;
pid %[1]s/nginx.pid;
error_log %[1]s/nginx-error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path %[1]s/tmp/body;
    proxy_temp_path %[1]s/tmp/proxy;
    fastcgi_temp_path %[1]s/tmp/fastcgi;
    uwsgi_temp_path %[1]s/tmp/uwsgi;
    scgi_temp_path %[1]s/tmp/scgi;
    include %[1]s/upstream.conf;
    server {
        listen %[2]s;
        location / {
            proxy_pass http://bench;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
`

// consulTemplateConf is consul-template's configuration: the benchmark's agent, the template, and nginx's
// reload as the template's command (consul-template waits for it; it returns once nginx has the signal).
const consulTemplateConf = `consul {
  address = %q
}
log_level = "info"
template {
  source      = %q
  destination = %q
  command     = [%s]
}
`

// startNginx renders the upstream file once, starts nginx on it, then starts consul-template watching
// Consul with the reload command. It returns nginx's listen address.
func startNginx(procs *localproc.Group, dir, nginxBin, ctBin, consulAddr, service string, env []string) (string, error) {
	free, err := localproc.FreePorts(1)
	if err != nil {
		return "", err
	}
	listen := net.JoinHostPort("127.0.0.1", strconv.Itoa(free[0]))
	tmpl := filepath.Join(dir, "upstream.ctmpl")
	upstream := filepath.Join(dir, "upstream.conf")
	conf := filepath.Join(dir, "nginx.conf")
	nginxArgs := []string{"-p", dir, "-e", filepath.Join(dir, "nginx-error.log"), "-c", conf}
	reload := append(append([]string{nginxBin}, nginxArgs...), "-s", "reload")
	var quoted []string
	for _, a := range reload {
		quoted = append(quoted, strconv.Quote(a))
	}
	files := map[string]string{
		tmpl: fmt.Sprintf(upstreamTemplate, service),
		conf: fmt.Sprintf(nginxConf, dir, listen),
		filepath.Join(dir, "consul-template.hcl"): fmt.Sprintf(consulTemplateConf, consulAddr, tmpl, upstream, strings.Join(quoted, ", ")),
	}
	for path, text := range files {
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			return "", err
		}
	}
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o755); err != nil {
		return "", err
	}

	// nginx needs the file before it starts, and a reload before nginx runs would fail: render it once first.
	once, _, err := localproc.Start("consul-template-once", filepath.Join(dir, "consul-template.log"), ctBin,
		[]string{"-consul-addr", consulAddr, "-template", tmpl + ":" + upstream, "-once"}, env, nil)
	if err != nil {
		return "", err
	}
	select {
	case <-once.Done():
		if once.Err() != nil {
			return "", fmt.Errorf("consul-template -once: %v; the end of %s:\n%s", once.Err(), once.LogPath, once.Tail())
		}
	case <-time.After(time.Minute):
		once.Stop()
		return "", fmt.Errorf("consul-template -once did not finish within a minute; the end of %s:\n%s", once.LogPath, once.Tail())
	}

	nginx, _, err := localproc.Start("nginx", filepath.Join(dir, "nginx.log"), nginxBin, nginxArgs, env, nil)
	if err != nil {
		return "", err
	}
	procs.Add(nginx)
	if err := waitListening(nginx, listen); err != nil {
		return "", err
	}

	// The first render of the watching consul-template finds the file as it is and runs no command.
	ct, _, err := localproc.Start("consul-template", filepath.Join(dir, "consul-template.log"), ctBin,
		[]string{"-config", filepath.Join(dir, "consul-template.hcl")}, env, localproc.LineContaining("(runner) starting"))
	if err != nil {
		return "", err
	}
	procs.Add(ct)
	return listen, nil
}

// waitListening polls until addr accepts connections; nginx prints nothing when it is up.
func waitListening(p *localproc.Process, addr string) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			conn.Close()
			return nil
		}
		if p.Exited() || time.Now().After(deadline) {
			return fmt.Errorf("%s not listening on %s (%v, exited: %v); the end of %s:\n%s", p.Name, addr, err, p.Exited(), p.LogPath, p.Tail())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
