// Package cmdline reads the command lines of an interactive terminal session
// as the session runs: output and keystrokes go in, each command comes out
// when the shell echoes the Enter that ran it.
//
// A line is read off a VT screen (charmbracelet/x/vt), so tab completion,
// history recall, Ctrl-R, line editing and lines wrapped past the width come
// out as the user saw them. An emulator costs hundreds of KiB, so a Tracker
// holds one only while a line is being typed: between lines it keeps the last
// few KiB of output and an alternate-screen flag, and a line's first key takes
// an emulator from a small shared pool and replays that tail into it. An idle
// session costs its tail and a few fields.
package cmdline
