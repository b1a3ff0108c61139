package contrib

import (
	"bytes"
	"debug/elf"
	"encoding/json"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/natcheck/natcheck/cmd"
)

// The Docker engine does not run on the test machines (only its client is
// there), so the image is never built here. These tests check what can be
// checked without it: the Dockerfile's structure, that .dockerignore keeps
// every file the build needs, and the builder stage's build command, run
// here on a copy of the build context.

var (
	dockerfile   = filepath.Join("..", "Dockerfile")
	dockerignore = filepath.Join("..", ".dockerignore")
)

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	cmd  string // upper case: FROM, RUN, ...
	args string
}

// stage is a FROM and what follows it; args are the global ARGs before the
// first FROM.
type stage struct {
	from  string
	insts []instruction
}

func parseDockerfile(t *testing.T) (globalArgs map[string]string, stages []stage) {
	t.Helper()
	data, err := os.ReadFile(dockerfile)
	if err != nil {
		t.Fatal(err)
	}
	globalArgs = map[string]string{}
	var cur string
	for _, line := range strings.Split(string(data), "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") || (trimmed == "" && cur == "") {
			continue
		}
		if s, ok := strings.CutSuffix(trimmed, `\`); ok {
			cur += s + " "
			continue
		}
		cur += trimmed
		word, rest, _ := strings.Cut(cur, " ")
		in := instruction{cmd: strings.ToUpper(word), args: strings.TrimSpace(rest)}
		cur = ""
		switch {
		case in.cmd == "FROM":
			stages = append(stages, stage{from: in.args})
		case len(stages) == 0 && in.cmd == "ARG":
			k, v, _ := strings.Cut(in.args, "=")
			globalArgs[k] = v
		case len(stages) == 0:
			t.Fatalf("Dockerfile: %s before the first FROM", in.cmd)
		default:
			stages[len(stages)-1].insts = append(stages[len(stages)-1].insts, in)
		}
	}
	if cur != "" {
		t.Fatalf("Dockerfile ends inside a continued line")
	}
	return globalArgs, stages
}

// find returns the args of every instruction cmd in s.
func (s stage) find(cmd string) []string {
	var out []string
	for _, in := range s.insts {
		if in.cmd == cmd {
			out = append(out, in.args)
		}
	}
	return out
}

// buildRun is the builder stage's RUN that calls go build.
func buildRun(t *testing.T, build stage) string {
	t.Helper()
	var runs []string
	for _, r := range build.find("RUN") {
		if strings.Contains(r, "go build") {
			runs = append(runs, r)
		}
	}
	if len(runs) != 1 {
		t.Fatalf("builder stage: want one RUN with go build, got %q", runs)
	}
	return runs[0]
}

func TestDockerfile(t *testing.T) {
	args, stages := parseDockerfile(t)
	if len(stages) != 2 {
		t.Fatalf("want two stages (builder, image), got %d", len(stages))
	}
	build, image := stages[0], stages[1]

	// The builder: Go at least the module's go line, so it never needs to
	// fetch a toolchain; the build as the release script does it.
	m := regexp.MustCompile(`^(?:--platform=\$BUILDPLATFORM )?golang:\$\{GO_VERSION\}(-\S+)? AS build$`).FindStringSubmatch(build.from)
	if m == nil {
		t.Fatalf("builder FROM %q: want golang:${GO_VERSION}... AS build", build.from)
	}
	if !versionAtLeast(args["GO_VERSION"], goModVersion(t)) {
		t.Errorf("ARG GO_VERSION=%s is older than go.mod's go %s", args["GO_VERSION"], goModVersion(t))
	}
	run := buildRun(t, build)
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "-buildvcs=false", "-buildid=", "cmd.stampedVersion=${VERSION}", "-o /out/natcheck"} {
		if !strings.Contains(run, want) {
			t.Errorf("build RUN lacks %q: %s", want, run)
		}
	}

	// The image: nothing but the binary (and CA certificates), not root.
	if image.from != "scratch" {
		t.Errorf("image FROM %q, want scratch", image.from)
	}
	if r := image.find("RUN"); len(r) > 0 {
		t.Errorf("the image stage runs %q: scratch has no shell", r)
	}
	users := image.find("USER")
	if len(users) != 1 || !regexp.MustCompile(`^[1-9][0-9]*:[1-9][0-9]*$`).MatchString(users[0]) {
		t.Errorf("USER %q: want one numeric uid:gid, not 0 (scratch has no /etc/passwd)", users)
	}
	if got := image.find("COPY"); !slices.Contains(got, "--from=build /out/natcheck /natcheck") {
		t.Errorf("COPY %q: want the builder's /out/natcheck as /natcheck", got)
	}
	var entry []string
	if e := image.find("ENTRYPOINT"); len(e) != 1 || json.Unmarshal([]byte(e[0]), &entry) != nil || !slices.Equal(entry, []string{"/natcheck"}) {
		t.Errorf("ENTRYPOINT %q: want the exec form [\"/natcheck\"] (no shell in scratch)", e)
	}
	var cmdArgs []string
	if c := image.find("CMD"); len(c) != 1 || json.Unmarshal([]byte(c[0]), &cmdArgs) != nil {
		t.Errorf("CMD %q: want one, in exec form", c)
	}

	// EXPOSE: serve's default ports, UDP and TCP.
	serve, _, err := cmd.NewRoot(&cmd.Deps{}).Find([]string{"serve"})
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, f := range []string{"port", "alt-port"} {
		p := serve.Flags().Lookup(f).DefValue
		want = append(want, p+"/udp", p+"/tcp")
	}
	var exposed []string
	for _, e := range image.find("EXPOSE") {
		exposed = append(exposed, strings.Fields(e)...)
	}
	slices.Sort(exposed)
	slices.Sort(want)
	if !slices.Equal(exposed, want) {
		t.Errorf("EXPOSE %q, want serve's defaults %q", exposed, want)
	}
}

// goModVersion is the go line of go.mod.
func goModVersion(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go (\S+)$`).FindSubmatch(data)
	if m == nil {
		t.Fatal("go.mod has no go line")
	}
	return string(m[1])
}

// versionAtLeast compares dotted Go versions (1.26.8 >= 1.26).
func versionAtLeast(have, want string) bool {
	h, w := strings.Split(have, "."), strings.Split(want, ".")
	for i := range max(len(h), len(w)) {
		var a, b int
		if i < len(h) {
			a, _ = strconv.Atoi(h[i])
		}
		if i < len(w) {
			b, _ = strconv.Atoi(w[i])
		}
		if a != b {
			return a > b
		}
	}
	return true
}

func TestVersionAtLeast(t *testing.T) {
	for _, tc := range []struct {
		have, want string
		ok         bool
	}{
		{"1.26.8", "1.26.8", true}, {"1.26.9", "1.26.8", true}, {"1.27", "1.26.8", true},
		{"1.26", "1.26.8", false}, {"1.26.7", "1.26.8", false}, {"1.9", "1.26", false},
	} {
		if got := versionAtLeast(tc.have, tc.want); got != tc.ok {
			t.Errorf("versionAtLeast(%s, %s) = %v", tc.have, tc.want, got)
		}
	}
}

// ignoreMatcher reads .dockerignore for the pattern forms it uses (*, ?,
// ** and plain names; a pattern also hides everything under a directory
// it matches) and refuses the rest (! exceptions, [classes], escapes), so
// the test never guesses at a form it does not know.
func ignoreMatcher(t *testing.T) func(path string) bool {
	t.Helper()
	data, err := os.ReadFile(dockerignore)
	if err != nil {
		t.Fatal(err)
	}
	var res []*regexp.Regexp
	for _, line := range strings.Split(string(data), "\n") {
		p := strings.TrimSpace(line)
		if p == "" || p[0] == '#' {
			continue
		}
		if strings.ContainsAny(p, "![]\\") {
			t.Fatalf(".dockerignore pattern %q: a form this test does not read", p)
		}
		p = strings.TrimPrefix(filepath.ToSlash(filepath.Clean(p)), "/")
		var re strings.Builder
		for i := 0; i < len(p); i++ {
			switch {
			case strings.HasPrefix(p[i:], "**/"):
				re.WriteString(`(?:.*/)?`)
				i += 2
			case strings.HasPrefix(p[i:], "**"):
				re.WriteString(`.*`)
				i++
			case p[i] == '*':
				re.WriteString(`[^/]*`)
			case p[i] == '?':
				re.WriteString(`[^/]`)
			default:
				re.WriteString(regexp.QuoteMeta(p[i : i+1]))
			}
		}
		res = append(res, regexp.MustCompile(`^`+re.String()+`(?:/.*)?$`))
	}
	return func(path string) bool {
		for _, re := range res {
			if re.MatchString(path) {
				return true
			}
		}
		return false
	}
}

func TestIgnoreMatcherForms(t *testing.T) {
	// The forms .dockerignore uses, as Docker reads them.
	ignored := ignoreMatcher(t)
	for path, want := range map[string]bool{
		".git": true, ".git/config": true, "dist/natcheck_1_linux_amd64.tar.gz": true,
		"report/testdata/x.json": true, "testdata/a": true, "cmd/cmd.test": true, "x.test": true,
		"go.mod": false, "main.go": false, "cmd/version.go": false, "probe/stunclient/servers.txt": false,
		"distx": false, "docsy/a.go": false,
	} {
		if got := ignored(path); got != want {
			t.Errorf("ignored(%q) = %v, want %v", path, got, want)
		}
	}
}

// TestDockerignoreKeepsBuildInputs lists every file `go build .` reads in
// the module (Go files, embedded files, go.mod, go.sum) and checks that
// .dockerignore hides none of them.
func TestDockerignoreKeepsBuildInputs(t *testing.T) {
	ignored := ignoreMatcher(t)
	out, err := exec.Command("go", "list", "-deps", "-f",
		`{{if .Module}}{{if .Module.Main}}{{.Dir}}{{range .GoFiles}} {{.}}{{end}}{{range .EmbedFiles}} {{.}}{{end}}{{end}}{{end}}`,
		"..").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	inputs := []string{"go.mod", "go.sum"}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		dir, err := filepath.Rel(root, f[0])
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range f[1:] {
			inputs = append(inputs, filepath.ToSlash(filepath.Join(dir, name)))
		}
	}
	if len(inputs) < 10 {
		t.Fatalf("only %d build inputs found: %q", len(inputs), inputs)
	}
	for _, p := range inputs {
		if ignored(p) {
			t.Errorf(".dockerignore hides %s, which the build needs", p)
		}
	}
}

// TestDockerBuildCommand runs the builder stage's go build, as Docker
// would run it (sh -c, the ARGs in the environment), on a copy of the
// build context with .dockerignore applied, in a directory other than
// the repository's. The binary must be static (the image has no libc),
// show the version it was given, run the image's default command, and be
// the release script's linux binary byte for byte.
func TestDockerBuildCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("builds natcheck twice: not with -short")
	}
	if runtime.GOOS != "linux" {
		t.Skip("the image's binary is a Linux one; run where it runs")
	}
	_, stages := parseDockerfile(t)
	run := buildRun(t, stages[0])
	ctxDir := filepath.Join(t.TempDir(), "src")
	copyContext(t, ctxDir, ignoreMatcher(t))
	out := t.TempDir()
	if strings.Count(run, "/out/") != 1 {
		t.Fatalf("build RUN should write /out/natcheck once: %s", run)
	}
	run = strings.Replace(run, "/out/", out+"/", 1)

	const version = "v1.2.3-test.1"
	sh := exec.Command("sh", "-c", run)
	sh.Dir = ctxDir
	sh.Env = append(os.Environ(), "VERSION="+version, "TARGETOS="+runtime.GOOS, "TARGETARCH="+runtime.GOARCH)
	if b, err := sh.CombinedOutput(); err != nil {
		t.Fatalf("the Dockerfile's build command failed: %v\n%s", err, b)
	}
	bin := filepath.Join(out, "natcheck")

	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	libs, _ := f.ImportedLibraries()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("the binary asks for a dynamic loader: scratch has none")
		}
	}
	f.Close()
	if len(libs) > 0 {
		t.Errorf("the binary links %q: scratch has none", libs)
	}

	got, err := exec.Command(bin, "version").Output()
	if want := "natcheck " + version + " " + runtime.Version() + "\n"; err != nil || string(got) != want {
		t.Errorf("natcheck version: %q, %v; want %q", got, err, want)
	}
	var cmdArgs []string
	if err := json.Unmarshal([]byte(stages[1].find("CMD")[0]), &cmdArgs); err != nil {
		t.Fatal(err)
	}
	if b, err := exec.Command(bin, cmdArgs...).CombinedOutput(); err != nil || !bytes.Contains(b, []byte("natcheck serve")) {
		t.Errorf("the image's default command %q: %v\n%s", cmdArgs, err, b)
	}

	// The release script builds the archives' binaries; same flags, same bytes.
	rel := filepath.Join(t.TempDir(), "natcheck")
	script := exec.Command("bash", filepath.Join("..", "scripts", "release.sh"), "--binary", runtime.GOOS+"/"+runtime.GOARCH, rel)
	script.Env = append(os.Environ(), "VERSION="+version)
	if b, err := script.CombinedOutput(); err != nil {
		t.Fatalf("release.sh --binary: %v\n%s", err, b)
	}
	a, _ := os.ReadFile(bin)
	b, _ := os.ReadFile(rel)
	if !bytes.Equal(a, b) {
		t.Errorf("the Dockerfile's binary (%d bytes) differs from release.sh's (%d bytes)", len(a), len(b))
	}
}

// copyContext copies the repository into dir, leaving out what
// .dockerignore hides, as docker build sends its context.
func copyContext(t *testing.T, dir string, ignored func(string) bool) {
	t.Helper()
	root := ".."
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil || rel == "." {
			return err
		}
		if ignored(filepath.ToSlash(rel)) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		dst := filepath.Join(dir, rel)
		if d.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, data, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}
