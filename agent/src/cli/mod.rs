//! Command line: `egret run|exec|apply|get|delete|waypoint`.

pub fn main() -> std::process::ExitCode {
    std::process::ExitCode::SUCCESS
}
