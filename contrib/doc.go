// Package contrib holds no code. Its tests check the files operators deploy
// natcheck with against the natcheck they deploy: the systemd unit in
// contrib/systemd (systemd-analyze verify and security, and the unit's
// command run in the NAT lab as an unprivileged user), the alert rules in
// contrib/prometheus (promtool, and the metrics a real server exposes),
// and the Dockerfile and .dockerignore at the module root (their
// structure, and the builder stage's build command run here, giving the
// release script's bytes).
package contrib
