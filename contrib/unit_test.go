package contrib

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The unit and its files, relative to this package's directory.
var (
	unitFile    = filepath.Join("systemd", "natcheck-serve.service")
	envFile     = filepath.Join("systemd", "serve.env")
	lowPortFile = filepath.Join("systemd", "low-port.conf")
)

// unitKeys reads a unit file's [Service] (or other section's) key=value
// lines, keeping every value of a repeated key in order.
func unitKeys(t *testing.T, path, section string) map[string][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	keys := map[string][]string{}
	cur := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case line[0] == '[':
			cur = strings.Trim(line, "[]")
		case strings.HasSuffix(line, `\`):
			t.Fatalf("%s: continued line %q: the tests' reader does not join lines", path, line)
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				t.Fatalf("%s: %q is not key=value", path, line)
			}
			if cur == section {
				keys[strings.TrimSpace(k)] = append(keys[strings.TrimSpace(k)], strings.TrimSpace(v))
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return keys
}

// parseEnvFile reads an EnvironmentFile= as systemd does for the forms it
// uses: comments, KEY=value and KEY="value" without escapes.
func parseEnvFile(data string) (map[string]string, error) {
	env := map[string]string{}
	for i, line := range strings.Split(data, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || k == "" || strings.ContainsAny(k, " \t\"'") {
			return nil, fmt.Errorf("line %d: %q is not KEY=value", i+1, line)
		}
		if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
			v = v[1 : len(v)-1]
		}
		if strings.ContainsAny(v, "\"'\\$") {
			return nil, fmt.Errorf("line %d: quotes, escapes or $ in %q: the tests' reader does not handle them", i+1, line)
		}
		env[k] = v
	}
	return env, nil
}

// expandExecStart turns an ExecStart= value into argv as systemd does for
// the forms the unit uses: words split at whitespace; a word "$NAME" becomes
// the variable's value split at whitespace (zero or more words); a word
// with "${NAME}" in it stays one word with the value in place. Anything
// else systemd would interpret (quotes, escapes, %-specifiers, the -@+!:
// prefixes) is refused rather than guessed at.
func expandExecStart(line string, env map[string]string) ([]string, error) {
	if strings.ContainsAny(line, "\"'\\%") {
		return nil, fmt.Errorf("ExecStart %q: quotes, escapes and specifiers are beyond the tests' reader", line)
	}
	words := strings.Fields(line)
	if len(words) == 0 || !strings.HasPrefix(words[0], "/") {
		return nil, fmt.Errorf("ExecStart %q must start with an absolute path (no -@+!: prefix)", line)
	}
	var argv []string
	for _, w := range words {
		switch {
		case strings.HasPrefix(w, "$") && !strings.HasPrefix(w, "${"):
			argv = append(argv, strings.Fields(env[w[1:]])...)
		case strings.Contains(w, "${"):
			argv = append(argv, os.Expand(w, func(k string) string { return env[k] }))
		case strings.Contains(w, "$"):
			return nil, fmt.Errorf("ExecStart word %q: $ inside a word is beyond the tests' reader", w)
		default:
			argv = append(argv, w)
		}
	}
	return argv, nil
}

func TestExpandExecStart(t *testing.T) {
	env := map[string]string{"ARGS": " --listen 192.0.2.1\t--listen 192.0.2.2 ", "EMPTY": "", "IP": "192.0.2.1"}
	for _, tc := range []struct {
		line string
		want []string
		bad  bool
	}{
		{line: "/bin/x serve $ARGS", want: []string{"/bin/x", "serve", "--listen", "192.0.2.1", "--listen", "192.0.2.2"}},
		{line: "/bin/x serve $EMPTY", want: []string{"/bin/x", "serve"}},
		{line: "/bin/x serve $UNSET --no-tcp", want: []string{"/bin/x", "serve", "--no-tcp"}},
		{line: "/bin/x --listen=${IP}", want: []string{"/bin/x", "--listen=192.0.2.1"}},
		{line: "/bin/x ${EMPTY}", want: []string{"/bin/x", ""}},
		{line: "-/bin/x", bad: true},
		{line: "x serve", bad: true},
		{line: `/bin/x "a b"`, bad: true},
		{line: "/bin/x %i", bad: true},
		{line: "/bin/x a$ARGS", bad: true},
	} {
		got, err := expandExecStart(tc.line, env)
		if tc.bad {
			if err == nil {
				t.Errorf("%q: no error, got %q", tc.line, got)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("%q: got %q, %v; want %q", tc.line, got, err, tc.want)
		}
	}
}

func TestParseEnvFile(t *testing.T) {
	env, err := parseEnvFile("# comment\n\nA=1\nB=\"x y\"\n; other comment\nC=\n")
	if err != nil {
		t.Fatal(err)
	}
	if len(env) != 3 || env["A"] != "1" || env["B"] != "x y" || env["C"] != "" {
		t.Errorf("got %q", env)
	}
	for _, bad := range []string{"A", "A B=1", "A=$B", `A="it's"`} {
		if _, err := parseEnvFile(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

// serveCommand is the unit's command line as systemd would run it with the
// example environment file installed.
func serveCommand(t *testing.T) []string {
	t.Helper()
	svc := unitKeys(t, unitFile, "Service")
	if got := svc["EnvironmentFile"]; len(got) != 1 || got[0] != "/etc/natcheck/serve.env" {
		t.Fatalf("EnvironmentFile = %q, want the one documented path /etc/natcheck/serve.env", got)
	}
	if len(svc["ExecStart"]) != 1 {
		t.Fatalf("ExecStart = %q, want one", svc["ExecStart"])
	}
	data, err := os.ReadFile(envFile)
	if err != nil {
		t.Fatal(err)
	}
	env, err := parseEnvFile(string(data))
	if err != nil {
		t.Fatalf("%s: %v", envFile, err)
	}
	argv, err := expandExecStart(svc["ExecStart"][0], env)
	if err != nil {
		t.Fatal(err)
	}
	if len(argv) < 2 || argv[0] != "/usr/local/bin/natcheck" || argv[1] != "serve" {
		t.Fatalf("ExecStart runs %q, want /usr/local/bin/natcheck serve ...", argv)
	}
	return argv
}

// TestUnitSandbox pins the hardening the docs promise, so an edit that
// drops one is a test failure rather than a silent regression.
func TestUnitSandbox(t *testing.T) {
	svc := unitKeys(t, unitFile, "Service")
	for key, want := range map[string]string{
		"DynamicUser": "yes", "NoNewPrivileges": "yes", "CapabilityBoundingSet": "", "AmbientCapabilities": "",
		"ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes", "PrivateDevices": "yes",
		"RestrictAddressFamilies": "AF_INET AF_INET6", "SystemCallErrorNumber": "EPERM", "MemoryDenyWriteExecute": "yes",
	} {
		if got := svc[key]; len(got) != 1 || got[0] != want {
			t.Errorf("%s = %q, want %q", key, got, want)
		}
	}
	if got := svc["SystemCallFilter"]; !slices.Contains(got, "@system-service") {
		t.Errorf("SystemCallFilter = %q, want @system-service among them", got)
	}
	if _, ok := svc["User"]; ok {
		t.Error("User= set: DynamicUser allocates the user")
	}
	// The low-port drop-in grants one capability and nothing else.
	drop := unitKeys(t, lowPortFile, "Service")
	for _, key := range []string{"CapabilityBoundingSet", "AmbientCapabilities"} {
		if got := drop[key]; len(got) != 1 || got[0] != "CAP_NET_BIND_SERVICE" {
			t.Errorf("low-port.conf %s = %q, want CAP_NET_BIND_SERVICE", key, got)
		}
	}
	if len(drop) != 3 {
		t.Errorf("low-port.conf sets %d keys, want 3 (the two capability sets, PrivateUsers=no): %q", len(drop), drop)
	}
}
