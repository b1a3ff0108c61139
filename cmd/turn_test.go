package cmd

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"strings"
	"testing"

	"github.com/natcheck/natcheck/diagnose"
	"github.com/natcheck/natcheck/probe/turncheck"
	"github.com/pion/logging"
	"github.com/pion/turn/v4"
)

// turnServer runs pion/turn's server on 127.0.0.1 (UDP) with auth and
// returns its address.
func turnServer(t *testing.T, auth turn.AuthHandler) string {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s, err := turn.NewServer(turn.ServerConfig{
		Realm: "example.org", AuthHandler: auth, LoggerFactory: logging.NewDefaultLoggerFactory(),
		PacketConnConfigs: []turn.PacketConnConfig{{PacketConn: pc,
			RelayAddressGenerator: &turn.RelayAddressGeneratorStatic{RelayAddress: net.ParseIP("127.0.0.1"), Address: "127.0.0.1"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return pc.LocalAddr().String()
}

const (
	testPassword = "Pw-9f8e7d6c5b"
	testSecret   = "Sec-1a2b3c4d5e"
)

func TestTurnNeverPrintsSecrets(t *testing.T) {
	key := turn.GenerateAuthKey("alice", "example.org", testPassword)
	lt := turnServer(t, func(u, _ string, _ net.Addr) ([]byte, bool) { return key, u == "alice" })
	rest := turnServer(t, turn.LongTermTURNRESTAuthHandler(testSecret, nil))
	silent, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		code int
	}{
		{"password works", nil, []string{"-s", "turn:" + lt, "--user", "alice", "--password", testPassword, "--packets", "3"}, ExitOK},
		{"password from env, wrong user", map[string]string{"NATCHECK_TURN_PASSWORD": testPassword}, []string{"-s", "turn:" + lt, "--user", "bob"}, ExitRelayFailed},
		{"secret works", map[string]string{"NATCHECK_TURN_SECRET": testSecret}, []string{"-s", "turn:" + rest, "--user", "alice", "--packets", "3"}, ExitOK},
		{"secret against password server", nil, []string{"-s", "turn:" + lt, "--user", "alice", "--secret", testSecret}, ExitRelayFailed},
		{"secret, silent server", nil, []string{"-s", "turn:" + silent.LocalAddr().String(), "--secret", testSecret, "--timeout", "300ms"}, ExitNoAnswer},
		{"both servers", nil, []string{"-s", "turn:" + lt, "-s", "turn:" + rest, "--user", "alice", "--password", testPassword, "--packets", "2"}, ExitRelayFailed},
	} {
		for _, mode := range [][]string{{"-v"}, {"--json"}} {
			args := append(append([]string{"turn"}, tc.args...), mode...)
			out, errOut, code := execute(t, tc.env, args...)
			if code != tc.code {
				t.Errorf("%s %v: exit %d, want %d\n%s%s", tc.name, mode, code, tc.code, out, errOut)
			}
			for _, s := range []string{testPassword, testSecret} {
				if strings.Contains(out+errOut, s) {
					t.Errorf("%s %v: output shows a secret:\n%s%s", tc.name, mode, out, errOut)
				}
			}
			if mode[0] == "--json" {
				var v struct {
					SchemaVersion int `json:"schema_version"`
					Servers       []struct {
						Verdict string `json:"verdict"`
					} `json:"servers"`
				}
				if err := json.Unmarshal([]byte(out), &v); err != nil || v.SchemaVersion != 1 || len(v.Servers) == 0 {
					t.Errorf("%s: bad JSON (%v): %s", tc.name, err, out)
				}
			} else if tc.code == ExitOK && !strings.HasPrefix(out, "relay works: ") {
				t.Errorf("%s: first line %q", tc.name, out)
			}
		}
	}
}

func TestTurnUsage(t *testing.T) {
	for _, args := range [][]string{
		{"turn"},
		{"turn", "-s", "stun:h", "--user", "a", "--password", "b"},
		{"turn", "-s", "turn:h"},
		{"turn", "-s", "turn:h", "--secret", "x", "--password", "y"},
		{"turn", "-s", "turn:h", "--user", "a", "--password", "b", "--packets", "0"},
	} {
		if _, _, code := execute(t, nil, args...); code != ExitUsage {
			t.Errorf("%v: exit %d, want %d", args, code, ExitUsage)
		}
	}
}

func TestReportTurn(t *testing.T) {
	key := turn.GenerateAuthKey("alice", "example.org", testPassword)
	lt := turnServer(t, func(u, _ string, _ net.Addr) ([]byte, bool) { return key, u == "alice" })
	env := map[string]string{"NATCHECK_TURN_PASSWORD": testPassword}
	// The fake diagnosis runs only the turn check, as diagnose.Run does
	// with the options report hands it.
	fake := func(got *diagnose.Options) func(context.Context, diagnose.Options) (*diagnose.Result, error) {
		return func(ctx context.Context, o diagnose.Options) (*diagnose.Result, error) {
			*got = o
			res, err := fakeDiagnosis(got)(ctx, o)
			if err != nil {
				return nil, err
			}
			tctx, cancel := context.WithTimeout(ctx, o.Timeout)
			defer cancel()
			res.Turn = turncheck.Run(tctx, o.Turn, o.TurnOptions)
			res.Checks = append(res.Checks, diagnose.Check{Name: diagnose.CheckTurn, Status: diagnose.StatusDone, Note: diagnose.TurnNote(res.Turn)})
			return res, nil
		}
	}
	for _, format := range []string{"json", "markdown", "text"} {
		var got diagnose.Options
		out := &bytes.Buffer{}
		c := newReportCmdWith(testDeps(out, &bytes.Buffer{}, env), fake(&got))
		c.SetArgs([]string{"-s", "203.0.113.10", "--turn", "turn:" + lt, "--user", "alice", "--format", format})
		c.SilenceErrors, c.SilenceUsage = true, true
		if err := c.ExecuteContext(context.Background()); err != nil {
			t.Fatal(err)
		}
		s := out.String()
		if strings.Contains(s, testPassword) {
			t.Errorf("%s shows the password", format)
		}
		if len(got.Turn) != 1 || got.Turn[0].Raw != "turn:"+lt || got.TurnOptions.User != "alice" || got.TurnOptions.Password != testPassword {
			t.Errorf("diagnose options: turn %+v, user %q", got.Turn, got.TurnOptions.User)
		}
		switch format {
		case "json":
			var v struct {
				Turn []struct {
					Verdict string `json:"verdict"`
				} `json:"turn"`
			}
			if err := json.Unmarshal(out.Bytes(), &v); err != nil || len(v.Turn) != 1 || v.Turn[0].Verdict != "works" {
				t.Errorf("json turn: %v %+v", err, v)
			}
		default:
			if !strings.Contains(s, "TURN relay") || !strings.Contains(s, "relay works: 20/20 packets") {
				t.Errorf("%s lacks the TURN section:\n%s", format, s)
			}
		}
	}
}
