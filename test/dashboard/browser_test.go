package dashboard

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// browser is headless Chromium driven by chromedriver over W3C WebDriver: plain HTTP and JSON, so the test
// needs no Go dependency beyond the standard library, and exactly Debian's chromium and chromium-driver.
type browser struct {
	t       testing.TB
	session string // http://127.0.0.1:PORT/session/ID
	logs    *syncBuffer
}

// findTool returns the first of env's value or names found on PATH. Missing tools skip the test locally
// and fail it in CI, where test/install-chromium.sh must have installed them.
func findTool(t testing.TB, env string, names ...string) string {
	t.Helper()
	if p := os.Getenv(env); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("$%s=%s: %v", env, p, err)
		}
		return p
	}
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	msg := fmt.Sprintf("%s not found (set $%s or put it on PATH; bash test/install-chromium.sh installs it)", names[0], env)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

var startedOnPort = regexp.MustCompile(`started successfully on port (\d+)`)

// startBrowser runs chromedriver on a loopback port the kernel picks and opens a headless session.
func startBrowser(t testing.TB) *browser {
	t.Helper()
	chromium := findTool(t, "DYNUP_CHROMIUM", "chromium", "chromium-browser")
	driver := findTool(t, "DYNUP_CHROMEDRIVER", "chromedriver")

	// chromedriver accepts local connections only, by default.
	cmd := exec.Command(driver, "--port=0")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	b := &browser{t: t, logs: &syncBuffer{}}
	exited := make(chan struct{})
	port := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			b.logs.Write([]byte(sc.Text() + "\n"))
			if m := startedOnPort.FindStringSubmatch(sc.Text()); m != nil {
				port <- m[1]
			}
		}
		io.Copy(io.Discard, out)
	}()
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		if b.session != "" {
			b.call(http.MethodDelete, "", nil) // closes Chromium
		}
		cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("chromedriver:\n%s", b.logs.String())
		}
	})
	var p string
	select {
	case p = <-port:
	case <-exited:
		t.Fatalf("chromedriver exited before listening:\n%s", b.logs.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("chromedriver did not start within 30s:\n%s", b.logs.String())
	}

	caps := map[string]any{"capabilities": map[string]any{"alwaysMatch": map[string]any{
		"browserName": "chrome",
		"goog:chromeOptions": map[string]any{"binary": chromium, "args": []string{
			"--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,1000",
			"--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
			"--disable-default-apps", "--disable-extensions", "--disable-domain-reliability",
			// Anything but loopback goes to a closed loopback port: the page must work with no internet at all.
			"--proxy-server=127.0.0.1:9",
		}},
		"goog:loggingPrefs": map[string]string{"browser": "ALL"},
		"timeouts":          map[string]int{"script": 20000, "pageLoad": 20000},
	}}}
	var created struct {
		SessionID string `json:"sessionId"`
	}
	b.session = "http://127.0.0.1:" + p + "/session"
	b.call(http.MethodPost, "", caps, &created)
	b.session += "/" + created.SessionID
	return b
}

// call sends one WebDriver command and decodes its "value" into out (if given); any error fails the test.
func (b *browser) call(method, path string, body any, out ...any) {
	b.t.Helper()
	status, value, err := b.do(method, path, body)
	if err != nil {
		b.t.Fatalf("webdriver %s %s: %v", method, path, err)
	}
	if status != http.StatusOK {
		b.t.Fatalf("webdriver %s %s: %d %s", method, path, status, value)
	}
	if len(out) > 0 && out[0] != nil {
		if err := json.Unmarshal(value, out[0]); err != nil {
			b.t.Fatalf("webdriver %s %s: %v in %s", method, path, err, value)
		}
	}
}

func (b *browser) do(method, path string, body any) (int, json.RawMessage, error) {
	var rd io.Reader
	if body != nil {
		j, _ := json.Marshal(body)
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, b.session+path, rd)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	client := http.Client{Timeout: 60 * time.Second} // above the session's script and page load timeouts
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var env struct {
		Value json.RawMessage `json:"value"`
	}
	if err := json.Unmarshal(raw, &env); err != nil {
		return resp.StatusCode, nil, fmt.Errorf("%d %s", resp.StatusCode, raw)
	}
	return resp.StatusCode, env.Value, nil
}

// Open navigates and waits for the page to load.
func (b *browser) Open(url string) {
	b.t.Helper()
	b.call(http.MethodPost, "/url", map[string]string{"url": url})
}

// Eval runs a function body in the page and decodes what it returns into out.
func (b *browser) Eval(body string, out any) {
	b.t.Helper()
	b.call(http.MethodPost, "/execute/sync", map[string]any{"script": body, "args": []any{}}, out)
}

// WaitFor waits until the JavaScript expression cond is true, re-evaluating it on every DOM mutation, for
// at most the session's script timeout (20s). On failure it shows what the page says.
func (b *browser) WaitFor(what, cond string) {
	b.t.Helper()
	script := `const done = arguments[arguments.length - 1];
const cond = () => { try { return !!(` + cond + `); } catch (e) { return false; } };
if (cond()) { done(null); return; }
const obs = new MutationObserver(() => { if (cond()) { obs.disconnect(); done(null); } });
obs.observe(document.documentElement, { subtree: true, childList: true, characterData: true, attributes: true });`
	status, value, err := b.do(http.MethodPost, "/execute/async", map[string]any{"script": script, "args": []any{}})
	if err != nil {
		b.t.Fatalf("waiting for %s: %v", what, err)
	}
	if status != http.StatusOK {
		var text string
		b.Eval(`return document.body.innerText`, &text)
		b.t.Fatalf("the page never showed %s (%d %s); it shows:\n%s", what, status, firstLine(value), text)
	}
}

// Text returns the visible text of the first element matching a CSS selector ("" if none).
func (b *browser) Text(selector string) string {
	b.t.Helper()
	var s string
	sel, _ := json.Marshal(selector)
	b.Eval(`const e = document.querySelector(`+string(sel)+`); return e ? e.innerText : "";`, &s)
	return s
}

// ConsoleErrors returns the browser console's SEVERE entries so far (CSP violations and script errors).
func (b *browser) ConsoleErrors() []string {
	b.t.Helper()
	var entries []struct{ Level, Message string }
	b.call(http.MethodPost, "/se/log", map[string]string{"type": "browser"}, &entries)
	var out []string
	for _, e := range entries {
		if e.Level == "SEVERE" {
			out = append(out, e.Message)
		}
	}
	return out
}

// Screenshot writes a PNG of the window to path.
func (b *browser) Screenshot(path string) {
	b.t.Helper()
	var s string
	b.call(http.MethodGet, "/screenshot", nil, &s)
	png, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		b.t.Fatal(err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

func firstLine(b []byte) string {
	s, _, _ := strings.Cut(string(b), "\n")
	if len(s) > 300 {
		s = s[:300]
	}
	return s
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}
