package report

import "strings"

// OneLine is s on one line, for a verdict, a table cell, a JSON note or
// the error line on stderr: errors.Join and cobra put newlines between the
// parts of an error, which here become "; " (or a space after a line that
// ends with ':' or '?', as cobra's "Did you mean this?" does).
func OneLine(s string) string {
	if !strings.ContainsAny(s, "\r\n") {
		return s
	}
	var b strings.Builder
	sep := ""
	for line := range strings.FieldsFuncSeq(s, func(r rune) bool { return r == '\n' || r == '\r' }) {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		b.WriteString(sep)
		b.WriteString(line)
		sep = "; "
		if strings.HasSuffix(line, ":") || strings.HasSuffix(line, "?") {
			sep = " "
		}
	}
	return b.String()
}
