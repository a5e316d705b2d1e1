"""How a remote visit's texts say to join it (services/notifier/templates.join_words)."""

from services.notifier.templates import join_words


def test_a_video_visit_without_a_link_says_the_link_comes_by_text_in_each_language():
    assert join_words("video", None, "en") == "By video: we will text you the link."
    assert join_words("video", None, "fr") == "Par vidéo: nous vous enverrons le lien par texto."
    assert join_words("video", None, "es") == "Por video: le enviaremos el enlace por mensaje."


def test_a_video_visit_with_a_link_gives_it_and_a_phone_visit_without_a_number_is_called():
    assert join_words("video", "https://meet.example.com/c-1", "en") == \
        "By video: https://meet.example.com/c-1"
    assert join_words("phone", None, "en") == "By phone: we will call you at that time."
    assert join_words("clinic", None, "en") == ""
