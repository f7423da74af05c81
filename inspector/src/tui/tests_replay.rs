//! The TUI on a replay: its timeline keys drive a `ReplaySource` (step one event either way,
//! jump to a time, rewind, to the end, play, speed), and the views show the state of the
//! position, with the position's events in place of an accumulation.

use super::app::{Action, App};
use super::input::Key;
use crate::record::{Player, Pos, Recorder, Recording, StartInfo};
use crate::source::{DemoSource, ReplaySource, Source};
use std::sync::Arc;
use std::time::{Duration, Instant};

const STEP: Duration = Duration::from_millis(500);

fn recording(n: u32) -> Arc<Recording> {
    let mut rec = Recorder::new(Vec::new(), &StartInfo::default()).unwrap();
    let mut demo = DemoSource::with_seed(2);
    for i in 0..n {
        rec.push(&demo.sample().unwrap(), STEP * i).unwrap();
    }
    let bytes = rec.finish(STEP * n).unwrap();
    Arc::new(Recording::from_bytes(&bytes, "test").unwrap())
}

/// The app and its source, wired as `run_with` wires them, with the first sample shown.
fn replay_app(rec: &Arc<Recording>) -> (App, ReplaySource) {
    let mut src = ReplaySource::new(rec.clone());
    let mut app = App::new(Duration::from_millis(100));
    app.source = Some(src.capabilities());
    app.replay = src.replay_control();
    app.apply_snapshot(src.sample().unwrap(), Instant::now());
    (app, src)
}

/// Presses `keys`, then lets the source carry them out and the app show the result.
fn press(app: &mut App, src: &mut ReplaySource, keys: &[Key]) {
    for &k in keys {
        app.handle_key(k);
    }
    app.apply_snapshot(src.sample().unwrap(), Instant::now());
}

fn timeline(app: &App) -> crate::source::Timeline {
    app.replay.as_ref().expect("a replay").timeline()
}

#[test]
fn event_steps_both_ways_show_the_players_states() {
    let rec = recording(20);
    let mut player = Player::new(rec.clone());
    let (mut app, mut src) = replay_app(&rec);
    let start = timeline(&app);
    assert_eq!((start.frame, start.playing), (0, false));
    let first = app.latest.clone().unwrap();
    assert_eq!(app.handle_key(Key::Char('.')), Action::SetPaused(false));
    press(&mut app, &mut src, &[Key::Char('.'), Key::Char('.')]);
    let t = timeline(&app);
    assert_eq!(t.event, start.event + 3, "three steps forward");
    let want = player.state(t.pos);
    assert_eq!(app.latest.as_ref().unwrap().entries, want.entries);
    press(
        &mut app,
        &mut src,
        &[Key::Char(','), Key::Char(','), Key::Char(',')],
    );
    assert_eq!(timeline(&app).event, start.event);
    assert_eq!(
        app.latest.as_ref().unwrap().entries,
        first.entries,
        "back where it began"
    );
    assert_eq!(
        app.events.len(),
        first.events.len(),
        "the position's events, not a sum"
    );
}

#[test]
fn jump_rewind_end_play_and_speed() {
    let rec = recording(20);
    let mut player = Player::new(rec.clone());
    let (mut app, mut src) = replay_app(&rec);
    // g 5s Enter: the sample taken at 5 s.
    let mut keys = vec![Key::Char('g')];
    keys.extend("5s".chars().map(Key::Char));
    keys.push(Key::Enter);
    press(&mut app, &mut src, &keys);
    let t = timeline(&app);
    assert_eq!(t.time, Duration::from_secs(5));
    assert_eq!(
        app.latest.as_ref().unwrap().entries,
        player.state(player.at_time(Duration::from_secs(5))).entries
    );
    // A bad time says why and moves nothing.
    let mut keys = vec![Key::Char('g')];
    keys.extend("soon".chars().map(Key::Char));
    keys.push(Key::Enter);
    press(&mut app, &mut src, &keys);
    assert!(app
        .status
        .as_deref()
        .unwrap_or("")
        .contains("jump to `soon`"));
    assert_eq!(timeline(&app).time, Duration::from_secs(5));
    // G: the end; r: the start.
    press(&mut app, &mut src, &[Key::Char('G')]);
    assert_eq!(timeline(&app).pos, player.end());
    assert_eq!(
        app.latest.as_ref().unwrap().entries,
        player.state(player.end()).entries
    );
    press(&mut app, &mut src, &[Key::Char('r')]);
    assert_eq!(timeline(&app).pos, Pos::frame(0));
    // Space plays at the chosen speed: time moves on between samples.
    press(
        &mut app,
        &mut src,
        &[Key::Char(']'), Key::Char(']'), Key::Char(' ')],
    );
    let t = timeline(&app);
    assert!(t.playing && t.speed == 4.0, "{t:?}");
    std::thread::sleep(Duration::from_millis(300));
    press(&mut app, &mut src, &[]);
    let later = timeline(&app);
    assert!(later.time >= Duration::from_millis(500), "{later:?}");
    // A step pauses.
    press(&mut app, &mut src, &[Key::Char('.')]);
    assert!(!timeline(&app).playing);
}

#[test]
fn replay_keys_are_ordinary_keys_without_a_replay() {
    let mut app = App::new(Duration::from_millis(100));
    assert_eq!(app.handle_key(Key::Char('.')), Action::None);
    assert_eq!(app.handle_key(Key::Char('p')), Action::SetPaused(true));
    assert!(app.prompt.is_none());
    app.handle_key(Key::Char('g'));
    assert!(app.prompt.is_none(), "g opens nothing without a replay");
}
