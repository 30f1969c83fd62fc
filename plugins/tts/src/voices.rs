//! Voices: Parler-TTS is steered by a description of the voice in words. OpenAI's voice names
//! map to named speakers Parler-TTS mini v1 was trained on (so one voice sounds the same from
//! sentence to sentence); a speaker's own name works too, and `instructions` replaces the
//! description altogether.

use rbee_plugin_api::{PluginError, tasks::text_to_speech::param};

/// The voice used when a job names none.
pub const DEFAULT_VOICE: &str = "alloy";

/// OpenAI's voices and the Parler-TTS speaker each maps to.
pub const OPENAI_VOICES: &[(&str, &str)] = &[
    ("alloy", "Jon"),
    ("ash", "Gary"),
    ("ballad", "David"),
    ("coral", "Lea"),
    ("echo", "Jerry"),
    ("fable", "Will"),
    ("nova", "Laura"),
    ("onyx", "Rick"),
    ("sage", "Karen"),
    ("shimmer", "Brenda"),
    ("verse", "Eric"),
];

/// The named speakers of Parler-TTS mini v1 (its model card lists them).
pub const SPEAKERS: &[&str] = &[
    "Laura", "Gary", "Jon", "Lea", "Karen", "Rick", "Brenda", "David", "Eileen", "Jordan", "Mike",
    "Yann", "Joy", "James", "Eric", "Lauren", "Rose", "Will", "Jason", "Aaron", "Naomie", "Alisa",
    "Patrick", "Jerry", "Tina", "Jenna", "Bill", "Tom", "Carol", "Barbara", "Rebecca", "Anna",
    "Bruce", "Emily",
];

/// The description that steers the model: `instructions` when given, else `voice`'s speaker
/// (default [`DEFAULT_VOICE`]) speaking clearly, close up; an unknown voice is refused.
pub fn description(voice: Option<&str>, instructions: Option<&str>) -> Result<String, PluginError> {
    if let Some(text) = instructions.map(str::trim).filter(|text| !text.is_empty()) {
        return Ok(text.to_string());
    }
    let voice = voice.map(str::trim).unwrap_or(DEFAULT_VOICE);
    let speaker = OPENAI_VOICES
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(voice))
        .map(|(_, speaker)| *speaker)
        .or_else(|| {
            SPEAKERS
                .iter()
                .copied()
                .find(|speaker| speaker.eq_ignore_ascii_case(voice))
        })
        .ok_or_else(|| {
            let openai: Vec<&str> = OPENAI_VOICES.iter().map(|(name, _)| *name).collect();
            PluginError::invalid_param(
                param::VOICE,
                format!(
                    "unknown voice '{voice}': use one of {} or a speaker name ({}, ...)",
                    openai.join(", "),
                    SPEAKERS[..4].join(", ")
                ),
            )
        })?;
    Ok(format!(
        "{speaker}'s voice is clear and expressive, at a moderate pace, recorded very close up \
         with almost no background noise."
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn voices_map_to_speakers_and_instructions_win() {
        assert!(description(None, None).unwrap().starts_with("Jon's voice"));
        assert!(
            description(Some("Nova"), None)
                .unwrap()
                .starts_with("Laura's voice")
        );
        assert!(
            description(Some("emily"), None)
                .unwrap()
                .starts_with("Emily's voice")
        );
        assert_eq!(
            description(Some("nova"), Some(" A deep, slow voice. ")).unwrap(),
            "A deep, slow voice."
        );
        assert!(
            description(Some("nova"), Some(" "))
                .unwrap()
                .starts_with("Laura")
        );
        let error = description(Some("hal9000"), None).unwrap_err();
        assert_eq!(error.field.into_option().unwrap().as_str(), "voice");
        assert!(error.message.contains("alloy, ash"), "{}", error.message);
    }

    #[test]
    fn every_openai_voice_names_a_known_speaker() {
        for (_, speaker) in OPENAI_VOICES {
            assert!(SPEAKERS.contains(speaker), "{speaker}");
        }
    }
}
