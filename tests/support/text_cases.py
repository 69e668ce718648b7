"""Sentences written for the text-path snapshot (tests/snapshots/text_path.json), none taken
from a corpus: English questions and answers as a model trained on questions prints them
(names, "I", contractions, numbers, quotes, capitals, repeated punctuation), and French
questions with the typography the corpus has (no-break spaces before ? and !, curly
apostrophes, capitals, numbers). `cases()` turns them into what the text path sees."""

from __future__ import annotations

ENGLISH = [
    "Where is Tom?", "Who did Mary see in Paris?", "What time is it?", "Why can't I go?",
    "Why don't you come with us?", "What's your name?", "Where's the station?",
    "Who's that man?", "What're you doing here?", "Why won't she answer?",
    "Where did you put the keys?", "What are you gonna do?", "Why do you wanna leave?",
    "What have you got to lose?", "Who wrote \"Hamlet\"?", "What does \"hello\" mean?",
    "Where do I sign?", "Why am I here?", "What should I do now?", "Who told you that I'd go?",
    "What did the FBI say?", "Where is the NASA building?", "Why is the USA so big?",
    "Who works at IBM?", "What's the BBC showing tonight?", "What costs 1,000 dollars?",
    "Where were you on May 5?", "What happened in 1999?", "Who has 3 cats?",
    "What is 2 + 2?", "Why is it 10:30 already?", "What's 50% of 80?",
    "Where is Boston?", "Who is John's father?", "What is Tom's dog called?",
    "Why isn't it working??", "What?!", "Who are you...?", "Where are we going!!",
    "What is that?!?", "Why?", "Who?", "Where to?", "What for?",
    "Where does your brother live?", "What do you want to eat tonight?",
    "Who's your favorite teacher?", "Why haven't you called me?",
    "What'll you have?", "Where'd they go?", "Who'd have thought it?",
    "Why shouldn't we?", "What couldn't he see?", "Where weren't they looking?",
    "Who isn't coming to the party?", "What wasn't clear?", "Why aren't you ready?",
    "When did Ken leave Japan?", "Which book did Mr. Smith buy?", "Whose umbrella is this?",
    "Whom did you meet in London?", "Which one do you like, the red or the blue?",
    "What's going on in New York?", "Why is Mt. Fuji so famous?",
    "Where is the U.N. building?", "What's the matter with you, Jim?",
    "Who said 'no' first?", "What does 'OK' stand for?", "Why is the sky blue?",
    "Where can I buy a ticket to Berlin?", "What's the weather like in Rome?",
    "Who is the president of France?", "Why did you say yes?",
    "What do I owe you?", "Where am I supposed to go?", "Who am I talking to?",
    "Why is everyone looking at me?", "What's wrong with me?", "Where should I wait?",
    "I don't know.", "I'm not sure.", "I've been here before.", "I'll call you.",
    "You're right.", "It's raining.", "They can't come.", "We won't tell.",
]

FRENCH = [
    "Où est Tom ?", "Qui a vu Marie à Paris ?", "Quelle heure est-il ?",
    "Pourquoi ne puis-je pas y aller ?", "Pourquoi ne viens-tu pas avec nous ?",
    "Comment t’appelles-tu ?", "Où est la gare ?", "Qui est cet homme ?",
    "Qu'est-ce que tu fais ici ?", "Pourquoi ne répond-elle pas ?",
    "Où as-tu mis les clés ?", "Qu’allez-vous faire ?", "Pourquoi veux-tu partir ?",
    "Qui a écrit « Hamlet » ?", "Que veut dire « bonjour » ?", "Où dois-je signer ?",
    "Qu’a dit le FBI ?", "Où est le bâtiment de la NASA ?", "Pourquoi les USA sont-ils si grands ?",
    "Qu’est-ce qui coûte 1 000 dollars ?", "Où étais-tu le 5 mai ?",
    "Que s’est-il passé en 1999 ?", "Qui a 3 chats ?", "Pourquoi est-il déjà 10 h 30 ?",
    "Qu’est-ce que 50 % de 80 ?", "Où est Boston ?", "Qui est le père de Jean ?",
    "Pourquoi ça ne marche pas ??", "Quoi ?!", "Qui êtes-vous… ?",
    "Où allons-nous !!", "Pourquoi ?", "Qui ?", "Où habite ton frère ?",
    "Que veux-tu manger ce soir ?", "Qui est ton professeur préféré ?",
    "Pourquoi ne m’as-tu pas appelé ?", "Quand Ken a-t-il quitté le Japon ?",
    "Quel livre M. Smith a-t-il acheté ?", "À qui est ce parapluie ?",
    "Qui as-tu rencontré à Londres ?", "Pourquoi le mont Fuji est-il si célèbre ?",
    "Qu'est-ce qui ne va pas, Jim ?", "Pourquoi le ciel est-il bleu ?",
    "Où puis-je acheter un billet pour Berlin ?", "Quel temps fait-il à Rome ?",
    "Qui est le président de la France ?", "Pourquoi as-tu dit oui ?",
    "ÊTES-VOUS PRÊTS ?", "Où est l’ONU ?", "Combien ça coûte ?",
    "Est-ce que c’est l’œuvre d’Émile ?", "Qu’y a-t-il dans la boîte ?",
    "Pourquoi tout le monde me regarde-t-il ?", "Où dois-je attendre ?",
]

# The truecaser the snapshot prints with (what train_truecaser learns: a word's usual form)
TRUECASE = {"tom": "Tom", "mary": "Mary", "paris": "Paris", "boston": "Boston",
            "john": "John", "ken": "Ken", "japan": "Japan", "smith": "Smith", "mr.": "Mr.",
            "london": "London", "new": "New", "york": "York", "mt.": "Mt.", "fuji": "Fuji",
            "jim": "Jim", "berlin": "Berlin", "rome": "Rome", "france": "France",
            "may": "May", "hamlet": "Hamlet", "u.n.": "U.N."}

# Token sequences a model prints that no sentence above tokenizes to
MODEL_QUIRKS = [
    [], ["?"], ["?", "?"], ["where", "is", "tom", "?", "?", "?"], ["_unk_", "?"],
    ["where", "is", "the", "_unk_", "?"], ["t_up", "fbi", "?"], ["t_up", "i", "?"],
    ["why", "ca", "n't", "i", "?"], ["what", "are", "you", "gon", "na", "do", "?"],
    ["i", "got", "ta", "go", "."], ["who", "wan", "na", "come", "?"],
    ["what", "'s", "\u2019s", "?"], ["where", "\u2019s", "tom", "?"], ["tom", "'s", "?"],
    ["what", "?", "!"], ["\"", "what", "\"", "?"], ["'", "why", "'", "?"],
    ["1,000", "?"], ["what", "is", "2", "+", "2", "?"], ["10:30", "?"],
    ["i", "i", "i", "?"], ["t_up", "usa", "t_up", "usa", "?"], ["who", "is", "t_up"],
    [".", ".", "."], ["...", "?"], ["where", "is", "tom", "..."], ["-", "what", "?"],
]


def target_inputs() -> list[dict]:
    """What the English side of the text path is given: the tokens of each English sentence
    as the tokenize stage makes them (and with its final mark doubled, as a model may print
    it), and the model quirks; each printed with the truecaser and without one."""
    from pipeline.data.tokenize import tokenize

    seqs = [tokenize(s, "en") for s in ENGLISH]
    seqs += [t + t[-1:] for t in seqs if t]
    seqs += MODEL_QUIRKS
    return [{"tokens": t, "truecased": cased} for cased in (True, False) for t in seqs]


def source_inputs() -> list[dict]:
    """The French side: each sentence under both tokenizer settings."""
    return [{"text": s, "lowercase": flag, "mark_caps": flag}
            for flag in (True, False) for s in FRENCH]
