"""The menu bar (File, View, Help): every action a lecturer looks for is there, with a working shortcut."""

from __future__ import annotations


def _actions(win) -> dict[str, str]:
    out = {}
    for menu in (win.menu_file, win.menu_view, win.menu_help):
        for action in menu.actions():
            if not action.isSeparator() and action.text():
                out[action.text().replace("&", "")] = action.shortcut().toString()
    return out


def test_every_menu_action_has_a_shortcut_and_no_two_share_one(window):
    actions = _actions(window)
    for wanted in ("Open image…", "Quit", "Save figure…", "Lesson"):
        assert wanted in actions, sorted(actions)
    shortcuts = [key for key in actions.values() if key]
    assert len(shortcuts) == len(set(shortcuts)), actions  # one key, one action
    for name in ("Open image…", "Export result (PNG + JSON)…", "Quit", "Save figure…", "Lesson"):
        assert actions[name], f"{name!r} has no shortcut on this platform"


def test_quit_closes_the_window(window, qtbot):
    quit_action = next(a for a in window.menu_file.actions() if a.text() == "Quit")
    quit_action.trigger()
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=5_000)


def test_the_window_fits_the_screen_it_opens_on():
    """A 1280x800 projector must see the whole window: the preferred size is cut to the available area."""
    from PySide6.QtCore import QSize

    from app.main_window import PREFERRED_SIZE, fitted_size

    assert fitted_size(QSize(1280, 770)) == QSize(1280, 770)
    assert fitted_size(QSize(3840, 2100)) == QSize(*PREFERRED_SIZE)
    assert fitted_size(None) == QSize(*PREFERRED_SIZE)
