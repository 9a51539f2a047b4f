#!/usr/bin/env python3
"""Deterministic generator for the bundled demo data in ``examples/demo/``.

The tenant is fictitious: "Demo Retail BV", a supermarket chain whose HR chatbot ("Sam") answers
questions from shop staff in Dutch, English, German and Turkish. The script writes

* ``sessions.csv``: the upstream export format (16 columns, no header row, LF line endings,
  ``DD.MM.YYYY HH:MM:SS`` wall-clock times), 150 data lines of which 6 are broken on purpose;
* ``transcripts/<session_id>.txt``: one plain-text transcript per session that has one, with the
  transcript URL in the CSV given relative to the CSV file's directory.

Everything is drawn from ``random.Random(seed)``: the same seed gives byte-identical files. The
deliberate defects are described in ``examples/demo/README.md``. Standard library only::

    .venv/bin/python examples/make_demo_data.py [--seed N] [--out DIR]
"""

from __future__ import annotations

import argparse
import csv
import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from random import Random

DEFAULT_SEED = 20261005
N_LINES = 150
"""Data lines in sessions.csv, including the 6 deliberately broken ones."""

LANG_LINES: dict[str, int] = {"nl": 68, "en": 37, "de": 22, "tr": 23}
"""Data lines per conversation language: 45 % / 25 % / 15 % / 15 % of 150 (rounded)."""

FIRST_DAY = date(2026, 10, 5)  # Monday
N_DAYS = 21  # up to and including Sunday 25 October 2026
BOT = "Sam"
HR_MAIL = "hr@demoretail.example"
PORTAL = "https://mijn.demoretail.example"
EUR_PER_TOKEN = 1.48e-7
TIME_FORMAT = "%d.%m.%Y %H:%M:%S"

TOPICS: tuple[str, ...] = (
    "sick",
    "schedule",
    "leave",
    "salary",
    "contract",
    "onboarding",
    "offboarding",
    "workwear",
    "contacts",
    "login",
    "smalltalk",
    "unrelated",
)
TOPIC_WEIGHTS: tuple[int, ...] = (12, 16, 12, 12, 7, 7, 5, 7, 6, 7, 5, 4)
HR_TOPICS: tuple[str, ...] = TOPICS[:10]

UPSTREAM_CATEGORY: dict[str, tuple[str, ...]] = {
    "sick": ("Sick leave", "Sick leave", "sick leave", "Illness"),
    "schedule": ("Schedule", "Schedules & Hours", "schedule", "Roster"),
    "leave": ("Vacation", "Leave request", "vacation"),
    "salary": ("Payroll", "Salary", "HR & Payroll"),
    "contract": ("Contract", "Contract hours", "HR & Payroll"),
    "onboarding": ("Onboarding", "onboarding"),
    "offboarding": ("Offboarding", "Resignation"),
    "workwear": ("Workwear", "Staff pass", "Uniform"),
    "contacts": ("Contacts", "General Information"),
    "login": ("Technical Support", "Login", "App"),
    "smalltalk": ("Greeting", "Small talk", "Language inquiry"),
    "unrelated": ("General", "Other", "Off-topic"),
}

QA = tuple[str, str]
"""A user question template and the assistant's answer template ("\\n" = a new line)."""


@dataclass(frozen=True)
class Lang:
    """All text of one language: topic questions with answers plus the conversational glue."""

    code: str
    csv_names: tuple[str, ...]
    topics: dict[str, tuple[QA, ...]]
    greet: tuple[str, ...]
    greet_reply: tuple[str, ...]
    thanks: tuple[str, ...]
    thanks_reply: tuple[str, ...]
    ok: tuple[str, ...]
    ok_reply: tuple[str, ...]
    complaint: tuple[str, ...]
    complaint_reply: tuple[str, ...]
    give_up: tuple[str, ...]
    give_up_reply: tuple[str, ...]
    ask_human: tuple[str, ...]
    forward: tuple[str, ...]
    escalate: tuple[str, ...]
    preamble: str
    weekdays: tuple[str, ...]
    months: tuple[str, ...]
    date_pattern: str
    week_pattern: str
    inline_sep: str
    lower_inline: bool
    hr_phone: str
    it_phone: str


# ------------------------------------------------------------------------------------ Dutch

NL = Lang(
    code="nl",
    csv_names=("Dutch", "Dutch", "Dutch", "dutch", "dutch", "Nederlands"),
    topics={
        "sick": (
            (
                "Ik ben ziek, bij wie moet ik me afmelden?",
                "Wat vervelend dat je ziek bent! Meld je zo snel mogelijk af bij je "
                "leidinggevende, {manager}, en in elk geval twee uur voordat je dienst begint.\n"
                "Bel liefst even, alleen een appje is niet genoeg.",
            ),
            (
                "Ik voel me niet lekker en moet om {time} beginnen, wat moet ik doen?",
                "Beterschap! Bel zo snel mogelijk naar filiaal {store} en vraag naar de "
                "dienstdoende leidinggevende.\nLaat ook weten hoe lang je denkt uit te vallen, "
                "dan kunnen ze je dienst op tijd opvullen.",
            ),
            (
                "Heb ik een doktersverklaring nodig als ik ziek ben?",
                "Nee, bij Demo Retail hoef je geen doktersverklaring in te leveren. Ben je "
                "langer dan een week ziek, dan neemt de bedrijfsarts contact met je op.",
            ),
            (
                "Ik ben weer beter, moet ik me ergens hersteld melden?",
                "Fijn dat je weer beter bent! Meld je hersteld bij {manager} voordat je weer "
                "gaat werken. Dan wordt je ziekmelding in het systeem afgesloten.",
            ),
            (
                "Krijg ik gewoon doorbetaald als ik ziek ben?",
                "Ja, tijdens ziekte word je doorbetaald volgens de cao.\n"
                "Voor je persoonlijke situatie kun je het beste even bij HR navragen: "
                "{hr_mail}.",
            ),
            (
                "Mijn zoontje is ziek, mag ik dan thuisblijven?",
                "Ja, daar is calamiteitenverlof of kortdurend zorgverlof voor. Overleg het zo "
                "snel mogelijk met {manager}, die zet het in je rooster.",
            ),
            (
                "Ik heb {day} een afspraak bij de fysio, valt dat onder ziekteverlof?",
                "Een afspraak bij de fysio plan je bij voorkeur buiten je werktijd. Lukt dat "
                "niet, overleg dan met {manager}; het telt niet als ziekmelding.",
            ),
        ),
        "schedule": (
            (
                "Hoe laat moet ik {day} beginnen?",
                "Volgens het rooster begin je {day} om {time} in filiaal {store}. Je dienst "
                "loopt tot {time2}.\nHet actuele rooster zie je altijd in de personeelsapp "
                "onder 'Mijn rooster'.",
            ),
            (
                "Wanneer komt het rooster voor {week} online?",
                "Het rooster wordt uiterlijk twee weken van tevoren gepubliceerd. Het rooster "
                "voor {week} staat dus vóór {publish_day} in de app.",
            ),
            (
                "Kan ik mijn dienst van {day} ruilen met {colleague}?",
                "Dat kan! Ruilen gaat via de personeelsapp: kies de dienst, tik op 'Ruilen' en "
                "selecteer {colleague}. Zodra {manager} akkoord geeft, is de ruil definitief.",
            ),
            (
                "Hoeveel uur heb ik deze week gewerkt?",
                "Je gewerkte uren vind je in de app onder 'Uren'.\n"
                "Klopt er iets niet? Geef het dan door aan {manager}.",
            ),
            (
                "Krijg ik pauze bij een dienst van zes uur?",
                "Ja. Bij een dienst van meer dan 5,5 uur heb je recht op 30 minuten pauze. "
                "Die pauze is onbetaald.",
            ),
            (
                "Ik sta {day} ingeroosterd maar dan heb ik tentamen, wat nu?",
                "Geef het zo snel mogelijk door aan {manager}. Pas in de app ook je "
                "beschikbaarheid aan, dan word je voortaan niet meer op tentamendagen "
                "ingepland.",
            ),
            (
                "Hoe pas ik mijn beschikbaarheid aan?",
                "Open de personeelsapp en ga naar 'Beschikbaarheid'.\nDaar vul je per dag in "
                "wanneer je kunt werken. Wijzigingen gelden voor roosters die nog niet "
                "gepubliceerd zijn.",
            ),
        ),
        "leave": (
            (
                "Hoe vraag ik vakantie aan?",
                "Vakantie vraag je aan in de personeelsapp onder 'Verlof'. Doe dat minstens "
                "vier weken van tevoren.\nDe aanvraag gaat naar {manager}, die hem binnen een "
                "week beoordeelt.",
            ),
            (
                "Hoeveel vakantie-uren heb ik nog?",
                "Volgens het systeem heb je nog {leave_hours} vakantie-uren. Het actuele saldo "
                "zie je in de app onder 'Verlof' > 'Saldo'.",
            ),
            (
                "Mag ik {day} vrij nemen voor de bruiloft van mijn zus?",
                "Voor het huwelijk van een familielid in de eerste of tweede graad krijg je "
                "één dag bijzonder verlof. Vraag het aan in de app en kies 'Bijzonder verlof'.",
            ),
            (
                "Mijn verlofaanvraag voor {week} is afgewezen, waarom?",
                "De reden staat meestal bij de aanvraag in de app. In drukke periodes kan niet "
                "iedereen tegelijk vrij zijn.\nBespreek het gerust met {manager}.",
            ),
            (
                "Kan ik een goedgekeurde vakantie nog annuleren?",
                "Ja, dat kan tot twee weken voor de eerste verlofdag via 'Verlof' > 'Mijn "
                "aanvragen'. Daarna moet je het met {manager} overleggen.",
            ),
            (
                "Hoe lang is het ouderschapsverlof?",
                "Je hebt recht op 26 keer je wekelijkse arbeidsduur aan ouderschapsverlof. "
                "Hoe je dat opneemt en wat er wordt doorbetaald, bespreek je het beste met HR.",
            ),
        ),
        "salary": (
            (
                "Wanneer wordt het salaris uitbetaald?",
                "Het salaris wordt elke maand rond de 25e overgemaakt. Deze keer staat het "
                "uiterlijk {payday} op je rekening.",
            ),
            (
                "Waar vind ik mijn loonstrook van {month}?",
                "Je loonstroken staan in het personeelsportaal: {portal}, onder 'Documenten' > "
                "'Loonstroken'.\nJe logt in met hetzelfde account als voor de app.",
            ),
            (
                "Mijn loonstrook klopt niet, er missen uren. Wat moet ik doen?",
                "Vervelend! Kijk eerst of je uren in de app zijn goedgekeurd.\n"
                "Missen er dan nog uren, mail je loonstrook met een korte uitleg naar "
                "{hr_mail}. Correcties worden met de volgende salarisbetaling verrekend.",
            ),
            (
                "Krijg ik toeslag als ik op zondag werk?",
                "Ja, voor werken op zondag krijg je 50% toeslag op je uurloon. Op feestdagen "
                "is dat 100%.",
            ),
            (
                "Wanneer krijg ik vakantiegeld?",
                "Het vakantiegeld wordt één keer per jaar uitbetaald, in mei, samen met je "
                "salaris.",
            ),
            (
                "Hoe geef ik een nieuw rekeningnummer door?",
                "Een nieuw IBAN geef je zelf door in het portaal onder 'Mijn gegevens'. "
                "Wijzigingen vóór de 15e gaan dezelfde maand nog mee.",
            ),
        ),
        "contract": (
            (
                "Ik heb een contract van {hours} uur, mag ik meer uren werken?",
                "Meer werken kan als er in je filiaal uren beschikbaar zijn. Geef in de app aan "
                "dat je extra diensten wilt, dan kan {manager} je vaker inplannen.\n"
                "Meeruren boven je contract worden gewoon uitbetaald.",
            ),
            (
                "Kan mijn contract omhoog naar {hours2} uur?",
                "Een urenuitbreiding bespreek je met {manager}. Werk je al een paar maanden "
                "structureel meer dan je contract, dan is de kans groot.\nDe aanpassing zelf "
                "wordt daarna door HR verwerkt.",
            ),
            (
                "Wanneer loopt mijn contract af?",
                "De einddatum staat in je contract in het portaal onder 'Documenten'. Ongeveer "
                "een maand voor het einde hoor je van {manager} of je contract wordt verlengd.",
            ),
            (
                "Hoeveel uur mag ik per week werken als ik 16 ben?",
                "Als je 16 of 17 bent mag je maximaal 9 uur per dienst en 45 uur per week "
                "werken. Na 23:00 mag je niet ingeroosterd worden.",
            ),
            (
                "Wat is het verschil tussen een nulurencontract en een min-max contract?",
                "Bij een nulurencontract heb je geen vaste uren. Bij een min-maxcontract heb "
                "je een minimum aantal uren dat je altijd krijgt, en werk je soms meer tot het "
                "maximum.\nWelk contract jij hebt, staat in het portaal.",
            ),
        ),
        "onboarding": (
            (
                "Ik begin {day} in filiaal {store}, wat moet ik meenemen?",
                "Welkom bij Demo Retail! Neem op je eerste dag mee:\n"
                "- een geldig identiteitsbewijs\n"
                "- je bankpas of IBAN\n"
                "- zwarte schoenen met een dichte neus\n"
                "Je werkkleding krijg je in het filiaal.",
            ),
            (
                "Wie is mijn aanspreekpunt in de eerste week?",
                "Je buddy in de eerste week is {colleague}. Voor al het andere kun je bij "
                "{manager} terecht, de manager van filiaal {store}.",
            ),
            (
                "Moet ik nog een e-learning doen voordat ik begin?",
                "Ja, je krijgt een uitnodiging voor twee korte e-learnings: 'Veilig werken' en "
                "'Kassa basis'. Samen duren ze ongeveer 45 minuten en ze worden gewoon "
                "uitbetaald.",
            ),
            (
                "Ik heb mijn contract nog niet ontvangen, is dat normaal?",
                "Je contract komt per mail om digitaal te ondertekenen, meestal binnen een "
                "week na je gesprek.\nNa vijf werkdagen nog niks? Kijk in je spam of mail "
                "{hr_mail}.",
            ),
        ),
        "offboarding": (
            (
                "Ik wil ontslag nemen, hoe doe ik dat?",
                "Jammer dat je weggaat! Je zegt schriftelijk op met een mail aan {manager} en "
                "{hr_mail}. Je opzegtermijn is één maand, tenzij er in je contract iets anders "
                "staat.",
            ),
            (
                "Wat moet ik inleveren op mijn laatste werkdag?",
                "Op je laatste werkdag lever je bij {manager} in:\n"
                "- je personeelspas\n"
                "- je werkkleding\n"
                "- eventuele sleutels\n"
                "Je eindafrekening krijg je bij de eerstvolgende salarisbetaling.",
            ),
            (
                "Krijg ik mijn niet opgenomen vakantie-uren uitbetaald?",
                "Ja, openstaande vakantie-uren worden uitbetaald bij je eindafrekening, samen "
                "met het opgebouwde vakantiegeld.",
            ),
            (
                "Kan ik een werkgeversverklaring krijgen?",
                "Een werkgeversverklaring vraag je aan bij HR via {hr_mail}. Reken op ongeveer "
                "vijf werkdagen.",
            ),
        ),
        "workwear": (
            (
                "Mijn polo is kapot, hoe krijg ik een nieuwe?",
                "Nieuwe werkkleding vraag je aan bij {manager}. Meestal ligt er voorraad in het "
                "filiaal, anders wordt het binnen een week besteld. Het kost je niks.",
            ),
            (
                "Ik ben mijn personeelspas kwijt, wat nu?",
                "Geef het meteen door aan {manager}, dan wordt je oude pas geblokkeerd.\n"
                "Een nieuwe pas kost € 10; dat wordt ingehouden op je salaris.",
            ),
            (
                "Mag ik in een zwarte spijkerbroek werken?",
                "Nee, bij de werkkleding hoort een zwarte stoffen broek zonder opdruk. "
                "Spijkerstof is niet toegestaan, ook niet in zwart.",
            ),
            (
                "Hoeveel korting krijg ik met mijn personeelspas?",
                "Met je personeelspas krijg je 10% korting op je boodschappen in alle filialen. "
                "De korting geldt niet voor tabak, statiegeld en cadeaukaarten.",
            ),
        ),
        "contacts": (
            (
                "Wat is het telefoonnummer van HR?",
                "HR is bereikbaar op {hr_phone} (maandag t/m vrijdag 9:00–17:00) en via {hr_mail}.",
            ),
            (
                "Wie is de filiaalmanager van filiaal {store}?",
                "De manager van filiaal {store} ({city}) is {manager}.",
            ),
            (
                "Hoe bereik ik de vertrouwenspersoon?",
                "De vertrouwenspersoon bereik je via vertrouwenspersoon@demoretail.example of "
                "020 555 0177. Wat je vertelt, blijft vertrouwelijk.",
            ),
            (
                "Ik zoek het nummer van {colleague}, kun je dat geven?",
                "Privénummers van collega's mag ik niet delen. Je kunt {colleague} wel een "
                "bericht sturen via de chat in de personeelsapp.",
            ),
        ),
        "login": (
            (
                "Ik kan niet inloggen in de app, wat moet ik doen?",
                "Stel eerst je wachtwoord opnieuw in via 'Wachtwoord vergeten' op het "
                "inlogscherm.\nLukt het dan nog niet, bel de servicedesk op {it_phone}.",
            ),
            (
                "Waarom krijg ik geen sms-code om in te loggen?",
                "Controleer of je telefoonnummer in het portaal klopt. De code kan ook een paar "
                "minuten vertraging hebben.\nNog steeds niks? De servicedesk ({it_phone}) kan je "
                "account resetten.",
            ),
            (
                "Mijn account is geblokkeerd na te veel pogingen, hoe lang duurt dat?",
                "Je account wordt na 30 minuten automatisch weer vrijgegeven. Wil je niet "
                "wachten, bel dan {it_phone}.",
            ),
            (
                "Waar download ik de personeelsapp?",
                "Zoek in de App Store of Google Play op 'Demo Retail Team'. Inloggen doe je met "
                "je personeelsnummer en het wachtwoord uit je welkomstmail.",
            ),
        ),
        "smalltalk": (
            (
                "Ben jij een echt mens?",
                "Nee, ik ben {bot}, de digitale HR-assistent van Demo Retail. Ik help je graag "
                "met vragen over je rooster, verlof, salaris en meer.",
            ),
            (
                "Hoe gaat het met je?",
                "Met mij gaat het prima, dank je! Waar kan ik je mee helpen?",
            ),
            (
                "Wat is je lievelingseten?",
                "Ik eet niet, maar ik hoor veel goeds over de appeltaart uit onze bakkerij 😉 "
                "Kan ik je ergens mee helpen?",
            ),
            (
                "Spreek je ook Turks?",
                "Ja, ik kan je ook in het Turks, Engels en Duits helpen. Stel je vraag gerust "
                "in de taal die je het fijnst vindt.",
            ),
        ),
        "unrelated": (
            (
                "Wat is de hoofdstad van Australië?",
                "Dat is Canberra! Maar ik ben vooral goed in vragen over werken bij Demo "
                "Retail. Heb je daar een vraag over?",
            ),
            (
                "Gaat het morgen regenen?",
                "Het weerbericht heb ik helaas niet. Ik kan je wel vertellen wanneer je "
                "volgende dienst is!",
            ),
            (
                "Is de pindakaas deze week in de aanbieding?",
                "Voor aanbiedingen kun je het beste in de folder of de klantenapp kijken. Ik "
                "ben de HR-assistent voor medewerkers.",
            ),
            (
                "Kun je mijn huiswerk voor wiskunde maken?",
                "Daar kan ik je helaas niet mee helpen. Succes ermee!",
            ),
        ),
    },
    greet=("Hoi", "Hallo", "Goedemorgen", "Hey", "Hoi {bot}", "Goedenavond", "Hallo {bot}"),
    greet_reply=(
        "Hoi! Ik ben {bot}, de HR-assistent van Demo Retail. Waar kan ik je mee helpen?",
        "Hallo! Wat kan ik voor je doen?",
        "Hoi! Stel gerust je vraag.",
    ),
    thanks=(
        "Dank je wel, super!",
        "Top, bedankt!",
        "Duidelijk, dankjewel!",
        "Geweldig, heel erg bedankt 😊",
        "Helder, thanks!",
    ),
    thanks_reply=(
        "Graag gedaan! Fijne dienst.",
        "Graag gedaan, succes vandaag!",
        "Fijn dat ik je kon helpen!",
    ),
    ok=("Oké", "Oké, bedankt.", "Ok", "Ik kijk wel even in de app."),
    ok_reply=("Prima! Laat het weten als je nog iets wilt vragen.", "Succes!"),
    complaint=(
        "Daar heb ik niks aan.",
        "Je geeft steeds hetzelfde antwoord, kan ik niet gewoon een mens spreken?",
        "Ik heb al drie keer gebeld en niemand neemt op.",
        "Dat heb ik al geprobeerd en het werkt niet!",
        "Waarom moet dit altijd zo ingewikkeld?",
        "Dit is nu al de tweede keer deze maand. Echt belachelijk.",
    ),
    complaint_reply=(
        "Sorry dat het zo loopt, dat is echt vervelend.",
        "Dat begrijp ik, excuses voor het gedoe.",
    ),
    give_up=("Laat maar.", "Laat maar, ik bel zelf wel.", "Hier schiet ik niks mee op."),
    give_up_reply=(
        "Sorry dat ik je niet verder kon helpen. Je kunt HR altijd bereiken op {hr_phone}.",
    ),
    ask_human=(
        "Kan ik hierover met iemand van HR praten?",
        "Wie kan mij hier verder mee helpen?",
        "Kun je me doorverbinden met HR?",
    ),
    forward=(
        "Ik heb je vraag doorgezet naar HR. Je hoort binnen twee werkdagen van ze.\n"
        "Wil je niet wachten? Bel {hr_phone} (ma–vr 9:00–17:00) of mail naar {hr_mail}.",
        "Dit kan HR het beste voor je uitzoeken. Ik heb je vraag aan hen doorgestuurd.\n"
        "Je kunt ze ook zelf bereiken op {hr_phone} of via {hr_mail}.",
    ),
    escalate=(
        "Ik heb je vraag doorgestuurd naar {manager}, de manager van filiaal {store}. "
        "{manager_first} neemt vandaag of morgen contact met je op.",
        "Ik zet dit door naar je leidinggevende, {manager}. Je krijgt zo snel mogelijk "
        "een reactie.",
    ),
    preamble="Gesprek gestart via de personeelsapp (Demo Retail Team)",
    weekdays=("maandag", "dinsdag", "woensdag", "donderdag", "vrijdag", "zaterdag", "zondag"),
    months=(
        "januari",
        "februari",
        "maart",
        "april",
        "mei",
        "juni",
        "juli",
        "augustus",
        "september",
        "oktober",
        "november",
        "december",
    ),
    date_pattern="{weekday} {day} {month}",
    week_pattern="week {week}",
    inline_sep=", ",
    lower_inline=True,
    hr_phone="020 555 0142",
    it_phone="020 555 0199",
)

# ---------------------------------------------------------------------------------- English

EN = Lang(
    code="en",
    csv_names=("english", "english", "english", "English", "English"),
    topics={
        "sick": (
            (
                "I'm sick, who do I need to call?",
                "Sorry to hear you're not feeling well! Please call your manager, {manager}, at "
                "least two hours before your shift starts.\nA text message alone isn't enough.",
            ),
            (
                "Do I need a doctor's note when I'm ill?",
                "No, Demo Retail doesn't ask for a doctor's note. If you're sick for more than "
                "a week, the company doctor will get in touch with you.",
            ),
            (
                "I'm feeling better, do I need to report back somewhere?",
                "Glad you're better! Let {manager} know before your next shift so your sick "
                "report can be closed in the system.",
            ),
            (
                "Do I still get paid when I'm on sick leave?",
                "Yes, you keep getting paid during sick leave according to the collective "
                "agreement.\nFor the details of your own situation it's best to check with HR.",
            ),
            (
                "I woke up with a fever and my shift starts at {time}, what should I do?",
                "Get well soon! Call store {store} right away and ask for the manager on duty.\n"
                "Tell them how long you expect to be out so they can find cover for your shift.",
            ),
        ),
        "schedule": (
            (
                "What time do I start on {day}?",
                "According to the schedule you start on {day} at {time} in store {store}, and "
                "your shift ends at {time2}.\nYou can always see your current schedule in the "
                "staff app under 'My schedule'.",
            ),
            (
                "When will the schedule for {week} be published?",
                "Schedules go online at least two weeks in advance, so the schedule for {week} "
                "will be in the app by {publish_day}.",
            ),
            (
                "Can I swap my shift on {day} with {colleague}?",
                "Sure! Swaps go through the staff app: pick the shift, tap 'Swap' and select "
                "{colleague}. Once {manager} approves it, the swap is final.",
            ),
            (
                "Do I get a break during a six-hour shift?",
                "Yes. Shifts longer than 5.5 hours include a 30-minute break. The break is unpaid.",
            ),
            (
                "How do I change my availability?",
                "Open the staff app, go to 'Availability' and set the days and times you can "
                "work.\nChanges apply to schedules that haven't been published yet.",
            ),
        ),
        "leave": (
            (
                "How do I request vacation?",
                "You can request vacation in the staff app under 'Leave'. Please do it at least "
                "four weeks in advance.\n{manager} will review your request within a week.",
            ),
            (
                "How many vacation hours do I have left?",
                "According to the system you have {leave_hours} vacation hours left. The latest "
                "balance is always in the app under 'Leave' > 'Balance'.",
            ),
            (
                "Can I take {day} off for a family wedding?",
                "For the wedding of a close family member you get one day of special leave. "
                "Request it in the app and choose 'Special leave'.",
            ),
            (
                "My leave request for {week} was rejected, why?",
                "The reason is usually shown with the request in the app. During busy periods "
                "not everyone can be off at the same time.\nFeel free to discuss it with "
                "{manager}.",
            ),
        ),
        "salary": (
            (
                "When is payday?",
                "Salaries are paid every month around the 25th. This time the money will be in "
                "your account by {payday} at the latest.",
            ),
            (
                "Where can I find my payslip for {month}?",
                "Your payslips are in the staff portal: {portal}, under 'Documents' > "
                "'Payslips'.\nYou log in with the same account as the app.",
            ),
            (
                "Some hours are missing on my payslip, what should I do?",
                "Sorry about that! First check whether your hours were approved in the app.\n"
                "If hours are still missing, email your payslip with a short explanation to "
                "{hr_mail}. Corrections are paid with the next salary.",
            ),
            (
                "Do I get extra pay for working on Sundays?",
                "Yes, Sunday work comes with a 50% bonus on your hourly wage, and on public "
                "holidays it's 100%.",
            ),
            (
                "Can you help me with the 30% ruling?",
                "That's a tax question I can't answer here, sorry. The payroll team at "
                "{hr_mail} can tell you whether it applies to you.",
            ),
        ),
        "contract": (
            (
                "I have a {hours}-hour contract, can I work more hours?",
                "If there are hours available in your store, yes. Mark in the app that you'd "
                "like extra shifts so {manager} can schedule you more often.\nExtra hours on top "
                "of your contract are paid as normal.",
            ),
            (
                "Can my contract be increased to {hours2} hours?",
                "Talk to {manager} about increasing your hours. If you've been working more "
                "than your contract for a few months, your chances are good. HR processes the "
                "change afterwards.",
            ),
            (
                "When does my contract end?",
                "The end date is in your contract in the portal under 'Documents'. About a "
                "month before it ends, {manager} will let you know whether it's extended.",
            ),
            (
                "Does my residence permit limit how many hours I can work?",
                "That depends on your permit. Students from outside the EU, for example, may "
                "work at most 16 hours a week.\nPlease check with HR at {hr_mail} so your "
                "schedule stays within the rules.",
            ),
        ),
        "onboarding": (
            (
                "I start on {day} at store {store}, what do I need to bring?",
                "Welcome to Demo Retail! On your first day please bring:\n"
                "- a valid ID card or passport\n"
                "- your BSN (citizen service number)\n"
                "- your bank card or IBAN\n"
                "- black closed-toe shoes\n"
                "You'll get your uniform in the store.",
            ),
            (
                "Who is my contact person during the first week?",
                "Your buddy in the first week is {colleague}. For everything else, {manager}, "
                "the store manager of store {store}, is there for you.",
            ),
            (
                "I still haven't received my contract, is that normal?",
                "Your contract arrives by email for a digital signature, usually within a week "
                "of your interview.\nNothing after five working days? Check your spam folder or "
                "email {hr_mail}.",
            ),
            (
                "Do I need a Dutch bank account to get paid?",
                "No, any IBAN in the SEPA area works. You can enter it yourself in the portal "
                "under 'My details'.",
            ),
        ),
        "offboarding": (
            (
                "I want to resign, how do I do that?",
                "Sorry to see you go! Send a resignation email to {manager} and {hr_mail}. Your "
                "notice period is one month unless your contract says otherwise.",
            ),
            (
                "What do I need to hand in on my last day?",
                "On your last day, please hand in to {manager}:\n"
                "- your staff pass\n"
                "- your uniform\n"
                "- any keys\n"
                "Your final settlement is paid with the next salary run.",
            ),
            (
                "Will my unused vacation hours be paid out?",
                "Yes, unused vacation hours are paid out in your final settlement, together "
                "with the holiday allowance you've built up.",
            ),
        ),
        "workwear": (
            (
                "I lost my staff pass, what now?",
                "Let {manager} know right away so the old pass can be blocked.\nA new pass "
                "costs €10, which is deducted from your salary.",
            ),
            (
                "My polo shirt is torn, how do I get a new one?",
                "You can ask {manager} for new workwear. Stores usually have some in stock, "
                "otherwise it's ordered within a week. It's free of charge.",
            ),
            (
                "How much discount do I get with my staff pass?",
                "Your staff pass gives you 10% off your groceries in all stores, except "
                "tobacco, deposits and gift cards.",
            ),
            (
                "Can I wear my own black hoodie over the uniform?",
                "Only the Demo Retail fleece or cardigan may be worn over the uniform. You can "
                "ask {manager} for one.",
            ),
        ),
        "contacts": (
            (
                "What's the phone number for HR?",
                "HR can be reached at {hr_phone} (Monday–Friday 9:00–17:00) or by email at "
                "{hr_mail}.",
            ),
            (
                "Who is the manager of store {store}?",
                "The manager of store {store} ({city}) is {manager}.",
            ),
            (
                "Is there a confidential adviser I can talk to?",
                "Yes, you can reach the confidential adviser at "
                "vertrouwenspersoon@demoretail.example or +31 20 555 0177. Everything you share "
                "stays confidential.",
            ),
            (
                "Can you give me {colleague}'s phone number?",
                "I'm not allowed to share colleagues' private numbers. You can message "
                "{colleague} through the chat in the staff app.",
            ),
        ),
        "login": (
            (
                "I can't log in to the app, what should I do?",
                "First try resetting your password with 'Forgot password' on the login "
                "screen.\nIf that doesn't work, call the service desk at {it_phone}.",
            ),
            (
                "Why am I not getting the SMS code?",
                "Check that your phone number in the portal is correct. The code can also take "
                "a few minutes.\nStill nothing? The service desk ({it_phone}) can reset your "
                "account.",
            ),
            (
                "My account is locked, how long will that take?",
                "Your account unlocks automatically after 30 minutes. If you can't wait, call "
                "{it_phone}.",
            ),
            (
                "Is the app available in English?",
                "Yes! Go to 'Settings' > 'Language' in the staff app and choose English.",
            ),
        ),
        "smalltalk": (
            (
                "Are you a real person?",
                "No, I'm {bot}, Demo Retail's digital HR assistant. I'm happy to help with "
                "questions about schedules, leave, pay and more.",
            ),
            (
                "How are you today?",
                "I'm doing great, thanks for asking! What can I help you with?",
            ),
            (
                "Do you speak Dutch?",
                "Ja hoor! I can help you in Dutch, English, German and Turkish. Just write in "
                "the language you prefer.",
            ),
        ),
        "unrelated": (
            (
                "What's the capital of Australia?",
                "That's Canberra! But I'm mostly good at questions about working at Demo "
                "Retail. Anything I can help with there?",
            ),
            (
                "Is it going to rain tomorrow?",
                "I don't have the weather forecast, sorry. I can tell you when your next shift "
                "is, though!",
            ),
            (
                "Can you recommend a good bike repair shop in {city}?",
                "I'm afraid I can't help with that, I only know about HR topics. Your "
                "colleagues in {city} probably know a good one!",
            ),
        ),
    },
    greet=("Hi", "Hello", "Good morning", "Hey there", "Hi {bot}", "Good evening"),
    greet_reply=(
        "Hi! I'm {bot}, the digital HR assistant of Demo Retail. How can I help you today?",
        "Hello! What can I do for you?",
    ),
    thanks=(
        "Thanks a lot, great!",
        "Perfect, thank you!",
        "Awesome, that helps 😊",
        "Great, thanks!",
    ),
    thanks_reply=("You're welcome! Have a good shift.", "Happy to help!"),
    ok=("Ok", "Okay, thanks.", "Alright, I'll check the app."),
    ok_reply=("Sure! Just ask if anything else comes up.",),
    complaint=(
        "That doesn't answer my question at all.",
        "I've called three times and nobody picks up!",
        "You keep giving me the same answer, can I talk to a real person?",
        "I already tried that and it doesn't work!",
        "Why is this always so complicated?",
    ),
    complaint_reply=(
        "I'm sorry about that, I understand this is frustrating.",
        "Sorry for the hassle, that's not how it should go.",
    ),
    give_up=("Forget it.", "Never mind, I'll call them myself.", "This is useless."),
    give_up_reply=("Sorry I couldn't help more. You can always reach HR at {hr_phone}.",),
    ask_human=(
        "Can I talk to someone from HR about this?",
        "Who can help me with this?",
        "Is there a person I can email about this?",
    ),
    forward=(
        "I've forwarded your question to HR. They'll get back to you within two working days.\n"
        "If it's urgent, call {hr_phone} (Mon–Fri 9:00–17:00) or email {hr_mail}.",
        "HR can sort this out best, so I've passed your question on to them.\n"
        "You can also reach them directly at {hr_mail}.",
    ),
    escalate=(
        "I've passed this on to {manager}, the manager of store {store}, who will contact "
        "you today or tomorrow.",
        "I've escalated this to your manager, {manager}. You'll hear back as soon as possible.",
    ),
    preamble="Chat started from the Demo Retail Team app",
    weekdays=("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
    months=(
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ),
    date_pattern="{weekday} {day} {month}",
    week_pattern="week {week}",
    inline_sep=", ",
    lower_inline=True,
    hr_phone="+31 20 555 0142",
    it_phone="+31 20 555 0199",
)

# ----------------------------------------------------------------------------------- German

DE = Lang(
    code="de",
    csv_names=("German", "Deutsch", "Deutsch", "german"),
    topics={
        "sick": (
            (
                "Ich bin krank, wo muss ich mich abmelden?",
                "Gute Besserung! Melde dich bitte spätestens zwei Stunden vor Schichtbeginn "
                "telefonisch bei {manager} ab.\nEine Nachricht per WhatsApp reicht leider nicht.",
            ),
            (
                "Ab wann brauche ich eine Krankschreibung?",
                "Ab dem dritten Krankheitstag brauchst du eine Arbeitsunfähigkeitsbescheinigung "
                "vom Arzt.\nDie eAU ruft die Personalabteilung direkt bei deiner Krankenkasse ab, "
                "du musst nichts einreichen.",
            ),
            (
                "Ich bin wieder gesund, muss ich mich irgendwo zurückmelden?",
                "Schön, dass es dir besser geht! Gib {manager} vor deiner nächsten Schicht kurz "
                "Bescheid, dann wird die Krankmeldung im System geschlossen.",
            ),
            (
                "Mein Kind ist krank, darf ich zu Hause bleiben?",
                "Ja, dafür gibt es Kinderkrankentage. Sprich so früh wie möglich mit {manager} "
                "und lass dir vom Kinderarzt eine Bescheinigung geben.",
            ),
        ),
        "schedule": (
            (
                "Wann fängt meine Schicht am {day} an?",
                "Laut Dienstplan beginnst du am {day} um {time} Uhr in der Filiale {store} und "
                "arbeitest bis {time2} Uhr.\nDen aktuellen Plan findest du in der Mitarbeiter-App "
                "unter 'Mein Dienstplan'.",
            ),
            (
                "Wann kommt der Dienstplan für die {week}?",
                "Der Dienstplan wird spätestens zwei Wochen im Voraus veröffentlicht. Den Plan "
                "für die {week} findest du also bis {publish_day} in der App.",
            ),
            (
                "Kann ich meine Schicht am {day} mit {colleague} tauschen?",
                "Klar! Tauschen geht über die Mitarbeiter-App: Schicht auswählen, auf "
                "'Tauschen' tippen und {colleague} auswählen. Sobald {manager} zustimmt, steht "
                "der Tausch.",
            ),
            (
                "Habe ich bei einer Schicht von sieben Stunden Anspruch auf Pause?",
                "Ja. Bei mehr als sechs Stunden Arbeitszeit stehen dir 30 Minuten Pause zu. "
                "Die Pause wird nicht bezahlt.",
            ),
            (
                "Wie viele Stunden habe ich diese Woche gearbeitet?",
                "Deine Stunden siehst du in der App unter 'Zeiten'.\nWenn etwas nicht stimmt, "
                "sag bitte {manager} Bescheid.",
            ),
        ),
        "leave": (
            (
                "Wie beantrage ich Urlaub?",
                "Urlaub beantragst du in der Mitarbeiter-App unter 'Abwesenheiten', bitte "
                "mindestens vier Wochen vorher.\n{manager} entscheidet innerhalb einer Woche "
                "über den Antrag.",
            ),
            (
                "Wie viel Urlaub habe ich noch?",
                "Laut System hast du noch {leave_hours} Stunden Urlaub. Den aktuellen Stand "
                "siehst du in der App unter 'Abwesenheiten' > 'Saldo'.",
            ),
            (
                "Bekomme ich Sonderurlaub für die Hochzeit meiner Schwester?",
                "Für die Hochzeit eines nahen Angehörigen gibt es einen Tag Sonderurlaub. "
                "Beantrage ihn in der App unter 'Sonderurlaub'.",
            ),
            (
                "Mein Urlaubsantrag für die {week} wurde abgelehnt, warum?",
                "Der Grund steht meistens beim Antrag in der App. In Stoßzeiten können nicht "
                "alle gleichzeitig frei haben.\nSprich am besten direkt mit {manager}.",
            ),
        ),
        "salary": (
            (
                "Wann wird das Gehalt überwiesen?",
                "Das Gehalt wird jeden Monat um den 25. überwiesen. Diesmal ist es spätestens "
                "am {payday} auf deinem Konto.",
            ),
            (
                "Wo finde ich meine Gehaltsabrechnung für {month}?",
                "Deine Abrechnungen findest du im Mitarbeiterportal: {portal} unter "
                "'Dokumente' > 'Abrechnungen'.\nDu meldest dich mit demselben Konto wie in der "
                "App an.",
            ),
            (
                "Auf meiner Abrechnung fehlen Stunden, was soll ich tun?",
                "Prüf bitte zuerst, ob deine Stunden in der App freigegeben sind.\nFehlen dann "
                "immer noch Stunden, schick die Abrechnung mit einer kurzen Erklärung an "
                "{hr_mail}. Korrekturen kommen mit der nächsten Gehaltszahlung.",
            ),
            (
                "Gibt es einen Zuschlag für Sonntagsarbeit?",
                "Ja, für Arbeit an Sonntagen bekommst du 50 % Zuschlag, an Feiertagen 100 %.",
            ),
            (
                "Wie ändere ich meine Bankverbindung?",
                "Die neue IBAN trägst du selbst im Portal unter 'Meine Daten' ein. Änderungen "
                "bis zum 15. gelten noch für den laufenden Monat.",
            ),
        ),
        "contract": (
            (
                "Ich habe einen Vertrag über {hours} Stunden, darf ich mehr arbeiten?",
                "Wenn in deiner Filiale Stunden frei sind, ja. Gib in der App an, dass du "
                "Zusatzschichten möchtest, dann kann {manager} dich öfter einplanen.\n"
                "Mehrstunden werden normal bezahlt.",
            ),
            (
                "Kann ich meinen Vertrag auf {hours2} Stunden aufstocken?",
                "Eine Aufstockung besprichst du mit {manager}. Wenn du schon seit ein paar "
                "Monaten regelmäßig mehr arbeitest, stehen die Chancen gut. Die Änderung macht "
                "danach die Personalabteilung.",
            ),
            (
                "Ich bin Minijobber, wie viele Stunden darf ich im Monat arbeiten?",
                "Das hängt von deinem Stundenlohn und der aktuellen Minijob-Grenze ab. "
                "{manager} achtet bei der Planung darauf, dass du darunter bleibst.",
            ),
        ),
        "onboarding": (
            (
                "Ich fange am {day} in der Filiale {store} an, was muss ich mitbringen?",
                "Willkommen bei Demo Retail! Bring am ersten Tag bitte mit:\n"
                "- deinen Personalausweis\n"
                "- deine Steuer-ID und Sozialversicherungsnummer\n"
                "- schwarze, geschlossene Schuhe\n"
                "Deine Arbeitskleidung bekommst du in der Filiale.",
            ),
            (
                "Wer ist in der ersten Woche mein Ansprechpartner?",
                "In deiner ersten Woche ist {colleague} dein Pate. Für alles andere ist "
                "{manager} da, die Leitung der Filiale {store}.",
            ),
            (
                "Muss ich vor dem Start noch eine Schulung machen?",
                "Ja, du bekommst eine Einladung zu zwei kurzen Online-Schulungen: 'Sicher "
                "arbeiten' und 'Kasse Basics'. Zusammen dauern sie etwa 45 Minuten und werden "
                "bezahlt.",
            ),
        ),
        "offboarding": (
            (
                "Ich möchte kündigen, wie mache ich das?",
                "Schade, dass du gehst! Die Kündigung muss schriftlich und unterschrieben sein, "
                "per Post oder persönlich bei {manager}. Eine E-Mail reicht leider nicht.\n"
                "Deine Kündigungsfrist steht in deinem Vertrag.",
            ),
            (
                "Was muss ich am letzten Arbeitstag abgeben?",
                "Am letzten Tag gibst du bei {manager} ab:\n"
                "- deinen Mitarbeiterausweis\n"
                "- deine Arbeitskleidung\n"
                "- eventuelle Schlüssel\n"
                "Die Endabrechnung kommt mit der nächsten Gehaltszahlung.",
            ),
            (
                "Bekomme ich ein Arbeitszeugnis?",
                "Ja, ein Arbeitszeugnis forderst du bei der Personalabteilung unter {hr_mail} "
                "an. Rechne mit etwa zwei Wochen.",
            ),
        ),
        "workwear": (
            (
                "Ich habe meinen Mitarbeiterausweis verloren, was jetzt?",
                "Sag bitte sofort {manager} Bescheid, dann wird der alte Ausweis gesperrt.\n"
                "Ein neuer kostet 10 € und wird mit dem Gehalt verrechnet.",
            ),
            (
                "Mein Poloshirt ist kaputt, wie bekomme ich ein neues?",
                "Neue Arbeitskleidung bekommst du über {manager}. Meist ist etwas auf Lager, "
                "sonst wird innerhalb einer Woche nachbestellt. Für dich ist das kostenlos.",
            ),
            (
                "Wie viel Rabatt bekomme ich mit dem Mitarbeiterausweis?",
                "Mit deinem Ausweis bekommst du 10 % Rabatt auf deinen Einkauf in allen "
                "Filialen, außer auf Tabak, Pfand und Geschenkkarten.",
            ),
        ),
        "contacts": (
            (
                "Wie ist die Telefonnummer der Personalabteilung?",
                "Die Personalabteilung erreichst du unter {hr_phone} (Mo–Fr 9:00–17:00) oder "
                "per Mail an {hr_mail}.",
            ),
            (
                "Wer leitet die Filiale {store}?",
                "Die Filiale {store} ({city}) wird von {manager} geleitet.",
            ),
            (
                "Gibt es einen Betriebsrat, und wie erreiche ich ihn?",
                "Ja, der Betriebsrat ist per Mail unter betriebsrat@demoretail.example "
                "erreichbar. Die Sprechzeiten hängen am Schwarzen Brett in deiner Filiale.",
            ),
        ),
        "login": (
            (
                "Ich komme nicht in die App rein, was kann ich tun?",
                "Setz zuerst dein Passwort über 'Passwort vergessen' auf dem Anmeldebildschirm "
                "zurück.\nKlappt es dann immer noch nicht, ruf den Servicedesk unter {it_phone} "
                "an.",
            ),
            (
                "Warum bekomme ich keinen SMS-Code?",
                "Prüf bitte, ob deine Handynummer im Portal stimmt. Der Code kann auch ein paar "
                "Minuten dauern.\nKommt gar nichts, kann der Servicedesk ({it_phone}) dein Konto "
                "zurücksetzen.",
            ),
            (
                "Mein Konto ist gesperrt, wie lange dauert das?",
                "Nach zu vielen Fehlversuchen wird dein Konto nach 30 Minuten automatisch "
                "wieder freigegeben. Wenn es eilt, ruf {it_phone} an.",
            ),
        ),
        "smalltalk": (
            (
                "Bist du ein echter Mensch?",
                "Nein, ich bin {bot}, der digitale HR-Assistent von Demo Retail. Ich helfe dir "
                "gern bei Fragen zu Dienstplan, Urlaub, Gehalt und mehr.",
            ),
            ("Wie geht es dir?", "Mir geht's gut, danke! Wobei kann ich dir helfen?"),
            (
                "Sprichst du auch Niederländisch?",
                "Ja, ich spreche Deutsch, Niederländisch, Englisch und Türkisch. Schreib einfach "
                "in der Sprache, die dir am liebsten ist.",
            ),
        ),
        "unrelated": (
            (
                "Wird es morgen regnen?",
                "Eine Wettervorhersage habe ich leider nicht. Aber ich kann dir sagen, wann "
                "deine nächste Schicht ist!",
            ),
            (
                "Kannst du mir ein Rezept für Apfelkuchen geben?",
                "Da muss ich leider passen, ich bin nur für Personalfragen zuständig. Frag doch "
                "mal die Kolleginnen und Kollegen in der Bäckerei!",
            ),
            (
                "Wer wird dieses Jahr Deutscher Meister?",
                "Keine Ahnung, Fußball ist nicht mein Fachgebiet 😄 Hast du eine Frage zu "
                "deiner Arbeit?",
            ),
        ),
    },
    greet=("Hallo", "Guten Morgen", "Hi", "Moin", "Guten Abend", "Hallo {bot}"),
    greet_reply=(
        "Hallo! Ich bin {bot}, der digitale HR-Assistent von Demo Retail. Wie kann ich dir helfen?",
        "Hi! Was kann ich für dich tun?",
    ),
    thanks=(
        "Danke dir, super!",
        "Vielen Dank, das hilft mir sehr!",
        "Perfekt, danke!",
        "Super, danke schön 😊",
    ),
    thanks_reply=("Gern geschehen! Schöne Schicht noch.", "Immer gern!"),
    ok=("Okay", "Ok, danke.", "Alles klar."),
    ok_reply=("Prima! Melde dich, wenn du noch Fragen hast.",),
    complaint=(
        "Das hilft mir überhaupt nicht weiter.",
        "Ich habe schon dreimal angerufen und niemand geht ran!",
        "Du sagst immer das Gleiche, kann ich bitte mit einem Menschen sprechen?",
        "Das habe ich schon versucht, es funktioniert nicht!",
        "Warum ist das immer so kompliziert?",
    ),
    complaint_reply=(
        "Das tut mir leid, das ist wirklich ärgerlich.",
        "Entschuldige den Ärger, so sollte es nicht laufen.",
    ),
    give_up=("Vergiss es.", "Schon gut, ich rufe selbst an.", "Das bringt mir nichts."),
    give_up_reply=(
        "Schade, dass ich dir nicht weiterhelfen konnte. Die Personalabteilung erreichst du "
        "unter {hr_phone}.",
    ),
    ask_human=(
        "Kann ich darüber mit jemandem aus der Personalabteilung sprechen?",
        "Wer kann mir dabei weiterhelfen?",
    ),
    forward=(
        "Ich habe deine Frage an die Personalabteilung weitergeleitet. Du bekommst innerhalb "
        "von zwei Werktagen eine Antwort.\nWenn es eilt: {hr_phone} (Mo–Fr 9:00–17:00) oder "
        "{hr_mail}.",
    ),
    escalate=(
        "Ich habe dein Anliegen an {manager} weitergegeben, die Leitung der Filiale {store}. "
        "Du wirst heute oder morgen kontaktiert.",
    ),
    preamble="Chat gestartet über die Mitarbeiter-App",
    weekdays=tuple(
        ["Montag", "Dienstag", "Mittwoch", "Donnerstag", "Freitag", "Samstag", "Sonntag"]
    ),
    months=(
        "Januar",
        "Februar",
        "März",
        "April",
        "Mai",
        "Juni",
        "Juli",
        "August",
        "September",
        "Oktober",
        "November",
        "Dezember",
    ),
    date_pattern="{weekday}, {day}. {month}",
    week_pattern="KW {week}",
    inline_sep="! ",
    lower_inline=False,
    hr_phone="+49 211 555 0142",
    it_phone="+49 211 555 0199",
)

# ---------------------------------------------------------------------------------- Turkish

TR = Lang(
    code="tr",
    csv_names=("turkish", "turkish", "Turkish"),
    topics={
        "sick": (
            (
                "Hastayım, kime haber vermem gerekiyor?",
                "Geçmiş olsun! Lütfen en geç vardiyanız başlamadan iki saat önce yöneticiniz "
                "{manager} ile telefonla iletişime geçin.\nSadece mesaj atmak yeterli değil, "
                "mutlaka arayın.",
            ),
            (
                "Doktor raporu getirmem gerekiyor mu?",
                "Hayır, Demo Retail'de doktor raporu istenmiyor. Bir haftadan uzun hasta "
                "olursanız işyeri doktoru sizinle iletişime geçer.",
            ),
            (
                "İyileştim, işe döndüğümü kime bildirmeliyim?",
                "Sevindim! İşe dönmeden önce {manager} ile konuşun, böylece hastalık kaydınız "
                "sistemde kapatılır.",
            ),
            (
                "Çocuğum hasta, evde kalabilir miyim?",
                "Evet, bu durumlar için acil durum izni veya kısa süreli bakım izni var. En kısa "
                "sürede {manager} ile konuşun, izni vardiya planınıza işler.",
            ),
            (
                "Hastayken maaşım ödeniyor mu?",
                "Evet, hastalık süresince maaşınız toplu sözleşmeye göre ödenmeye devam eder.\n"
                "Kendi durumunuzla ilgili ayrıntılar için İK'ya sorabilirsiniz.",
            ),
        ),
        "schedule": (
            (
                "{day} günü saat kaçta başlıyorum?",
                "Vardiya planına göre {day} günü {store} numaralı mağazada başlangıç saatiniz "
                "{time}, bitiş saatiniz {time2}.\nGüncel planı her zaman personel uygulamasında "
                "'Vardiyalarım' bölümünde görebilirsiniz.",
            ),
            (
                "{week} için vardiya planı ne zaman çıkıyor?",
                "Vardiya planı en geç iki hafta önceden yayınlanır. {week} için plan {publish_day} "
                "tarihine kadar uygulamada olur.",
            ),
            (
                "{day} vardiyamı {colleague} ile değiştirebilir miyim?",
                "Evet! Değişikliği personel uygulamasından yapabilirsiniz: vardiyayı seçin, "
                "'Değiştir' düğmesine dokunun ve {colleague} adını seçin. {manager} onayladığında "
                "değişiklik kesinleşir.",
            ),
            (
                "Altı saatlik vardiyada mola hakkım var mı?",
                "Evet. 5,5 saatten uzun vardiyalarda 30 dakika mola hakkınız var. Bu mola "
                "ücretsizdir.",
            ),
            (
                "Bu hafta kaç saat çalıştım?",
                "Çalıştığınız saatleri uygulamada 'Saatlerim' bölümünde görebilirsiniz.\nBir "
                "hata varsa {manager} ile konuşun.",
            ),
        ),
        "leave": (
            (
                "Nasıl yıllık izin talep edebilirim?",
                "Yıllık izni personel uygulamasında 'İzin' bölümünden talep edebilirsiniz. "
                "Lütfen en az dört hafta önceden başvurun.\nTalebiniz bir hafta içinde "
                "değerlendirilir.",
            ),
            (
                "Kaç saat iznim kaldı?",
                "Sistemdeki son duruma göre {leave_hours} saat izniniz kaldı. En güncel bakiyeyi "
                "uygulamada 'İzin' > 'Bakiye' altında görebilirsiniz.",
            ),
            (
                "Kuzenimin düğünü için {day} günü izin alabilir miyim?",
                "Birinci veya ikinci derece akrabaların düğünü için bir gün özel izin hakkınız "
                "var. Kuzen düğünü için normal yıllık izin kullanmanız gerekir; talebi "
                "uygulamadan gönderebilirsiniz.",
            ),
            (
                "Aralıkta Türkiye'ye gitmek istiyorum, üç hafta izin alabilir miyim?",
                "Üç hafta art arda izin mümkün, ancak aralık yoğun bir dönem olduğu için erken "
                "başvurmanız önemli.\nTalebinizi uygulamadan gönderin ve {manager} ile önceden "
                "konuşun.",
            ),
            (
                "İzin talebim reddedildi, neden?",
                "Reddedilme sebebi genelde uygulamada talebin yanında yazar. Yoğun dönemlerde "
                "herkes aynı anda izin alamayabilir.\nBu konuyu {manager} ile konuşabilirsiniz.",
            ),
        ),
        "salary": (
            (
                "Maaş ne zaman yatıyor?",
                "Maaşlar her ay 25'i civarında ödenir. Bu sefer en geç {payday} tarihinde "
                "hesabınızda olur.",
            ),
            (
                "{month} ayının maaş bordrosunu nerede bulabilirim?",
                "Bordrolarınız personel portalında: {portal} adresinde 'Belgeler' > 'Bordrolar' "
                "bölümünde.\nUygulamadaki hesabınızla giriş yapabilirsiniz.",
            ),
            (
                "Bordromda eksik saat var, ne yapmalıyım?",
                "Önce saatlerinizin uygulamada onaylanıp onaylanmadığını kontrol edin.\nHâlâ "
                "eksik varsa bordronuzu kısa bir açıklamayla {hr_mail} adresine gönderin. "
                "Düzeltme bir sonraki maaşla yapılır.",
            ),
            (
                "Pazar günü çalışırsam ek ücret alıyor muyum?",
                "Evet, pazar günleri saat ücretinize %50 ek ödeme alırsınız. Resmi tatillerde "
                "bu oran %100.",
            ),
            (
                "Tatil parası ne zaman ödeniyor?",
                "Tatil parası yılda bir kez, mayıs ayında maaşla birlikte ödenir.",
            ),
        ),
        "contract": (
            (
                "Sözleşmem {hours} saatlik, daha fazla çalışabilir miyim?",
                "Mağazada saat varsa evet. Uygulamada ek vardiya istediğinizi belirtin, "
                "{manager} sizi daha sık planlayabilir.\nSözleşme dışı fazla saatler normal "
                "şekilde ödenir.",
            ),
            (
                "Sözleşmemi {hours2} saate çıkarabilir miyim?",
                "Saat artışını {manager} ile konuşmanız gerekiyor. Birkaç aydır düzenli olarak "
                "sözleşmenizden fazla çalışıyorsanız şansınız yüksek. Değişikliği sonrasında İK "
                "işler.",
            ),
            (
                "Sözleşmem ne zaman bitiyor?",
                "Bitiş tarihi portaldaki sözleşmenizde, 'Belgeler' bölümünde yazıyor. Sözleşme "
                "bitmeden yaklaşık bir ay önce uzatma konusunda size bilgi verilir.",
            ),
        ),
        "onboarding": (
            (
                "{day} günü {store} numaralı mağazada başlıyorum, yanımda ne getirmeliyim?",
                "Demo Retail'e hoş geldiniz! İlk gün yanınızda olsun:\n"
                "- geçerli bir kimlik belgesi\n"
                "- banka kartınız veya IBAN numaranız\n"
                "- burnu kapalı siyah ayakkabı\n"
                "İş kıyafetinizi mağazada alacaksınız.",
            ),
            (
                "İlk hafta kime soru sorabilirim?",
                "İlk haftadaki destekçiniz {colleague}. Diğer her konuda {store} numaralı "
                "mağazanın müdürü {manager} size yardımcı olur.",
            ),
            (
                "Sözleşmem henüz gelmedi, bu normal mi?",
                "Sözleşmeniz dijital imza için e-postayla gelir, genelde görüşmeden sonraki bir "
                "hafta içinde.\nBeş iş günü içinde gelmezse spam klasörünüze bakın veya "
                "{hr_mail} adresine yazın.",
            ),
        ),
        "offboarding": (
            (
                "İşten ayrılmak istiyorum, nasıl istifa ederim?",
                "Ayrılmanıza üzüldüm! Mağaza müdürünüze ve {hr_mail} adresine yazılı olarak "
                "e-posta göndererek istifa edebilirsiniz. Sözleşmenizde aksi yazmıyorsa ihbar "
                "süreniz bir aydır.",
            ),
            (
                "Son iş günümde neleri teslim etmem gerekiyor?",
                "Son iş gününüzde mağaza müdürünüze teslim edin:\n"
                "- personel kartınız\n"
                "- iş kıyafetleriniz\n"
                "- varsa anahtarlar\n"
                "Son hesap kesiminiz bir sonraki maaşla ödenir.",
            ),
            (
                "Kullanmadığım izinler ödenecek mi?",
                "Evet, kullanılmayan izin saatleriniz birikmiş tatil parasıyla birlikte son "
                "hesapta ödenir.",
            ),
        ),
        "workwear": (
            (
                "Personel kartımı kaybettim, ne yapmam lazım?",
                "Hemen mağaza müdürünüze bildirin, eski kartınız bloke edilir.\nYeni kart 10 € "
                "ve maaşınızdan kesilir.",
            ),
            (
                "Polo tişörtüm yırtıldı, yenisini nasıl alırım?",
                "Yeni iş kıyafetini mağaza müdürünüzden isteyebilirsiniz. Mağazada genelde stok "
                "var, yoksa bir hafta içinde sipariş edilir. Ücretsizdir.",
            ),
            (
                "Personel kartıyla ne kadar indirim alıyorum?",
                "Personel kartınızla tüm mağazalarda alışverişinizde %10 indirim alırsınız. "
                "Tütün ürünleri, depozito ve hediye kartları hariçtir.",
            ),
            (
                "Başörtüsü takabilir miyim, belli bir renk olması gerekiyor mu?",
                "Elbette takabilirsiniz. Lacivert ya da siyah, desensiz bir başörtüsü tercih "
                "edilir; mağazada kurumsal renkte başörtüsü de isteyebilirsiniz.",
            ),
        ),
        "contacts": (
            (
                "İK'nın telefon numarası ne?",
                "İK'ya {hr_phone} numarasından (pazartesi–cuma 9:00–17:00) veya {hr_mail} "
                "adresinden ulaşabilirsiniz.",
            ),
            (
                "{store} numaralı mağazanın müdürü kim?",
                "{store} numaralı mağazanın ({city}) müdürü {manager}.",
            ),
            (
                "Güven danışmanına nasıl ulaşabilirim?",
                "Güven danışmanına vertrouwenspersoon@demoretail.example adresinden veya 020 555 "
                "0177 numarasından ulaşabilirsiniz. Anlattıklarınız gizli kalır.",
            ),
        ),
        "login": (
            (
                "Uygulamaya giriş yapamıyorum, ne yapmalıyım?",
                "Önce giriş ekranındaki 'Şifremi unuttum' ile şifrenizi sıfırlayın.\nYine "
                "olmazsa servis masasını {it_phone} numarasından arayın.",
            ),
            (
                "SMS kodu neden gelmiyor?",
                "Portalda telefon numaranızın doğru olduğunu kontrol edin. Kod bazen birkaç "
                "dakika gecikebilir.\nHâlâ gelmezse servis masası ({it_phone}) hesabınızı "
                "sıfırlayabilir.",
            ),
            (
                "Hesabım kilitlendi, ne kadar sürer?",
                "Hesabınız 30 dakika sonra otomatik olarak açılır. Beklemek istemezseniz "
                "{it_phone} numarasını arayın.",
            ),
        ),
        "smalltalk": (
            (
                "Sen gerçek bir insan mısın?",
                "Hayır, ben {bot}, Demo Retail'in dijital İK asistanıyım. Vardiya, izin, maaş ve "
                "daha fazlası hakkında sorularınıza yardımcı olabilirim.",
            ),
            ("Nasılsın?", "İyiyim, teşekkürler! Size nasıl yardımcı olabilirim?"),
            ("Türkçe biliyor musun?", "Evet, Türkçe konuşabiliriz! Sorunuzu yazabilirsiniz."),
        ),
        "unrelated": (
            (
                "Yarın hava nasıl olacak?",
                "Maalesef hava durumunu bilmiyorum. Ama bir sonraki vardiyanızın ne zaman "
                "olduğunu söyleyebilirim!",
            ),
            (
                "Mağazada helal et var mı?",
                "Ürünlerle ilgili sorular için müşteri hizmetlerine veya mağazadaki "
                "arkadaşlarınıza danışabilirsiniz. Ben çalışanlar için İK asistanıyım.",
            ),
            (
                "Bana bir şiir yazar mısın?",
                "Maalesef bu konuda yardımcı olamam. Ama işle ilgili sorularınızı yanıtlamaktan "
                "memnuniyet duyarım!",
            ),
        ),
    },
    greet=("Merhaba", "Selam", "Günaydın", "İyi akşamlar", "Merhaba {bot}"),
    greet_reply=(
        "Merhaba! Ben {bot}, Demo Retail'in dijital İK asistanıyım. Size nasıl yardımcı "
        "olabilirim?",
        "Selam! Ne konuda yardıma ihtiyacınız var?",
    ),
    thanks=(
        "Çok teşekkürler, süper!",
        "Tamam, sağ ol!",
        "Teşekkür ederim, çok yardımcı oldun 😊",
        "Harika, teşekkürler!",
    ),
    thanks_reply=("Rica ederim! İyi çalışmalar.", "Ne demek, her zaman!"),
    ok=("Tamam", "Peki, teşekkürler.", "Anladım."),
    ok_reply=("Başka bir sorunuz olursa yazabilirsiniz.",),
    complaint=(
        "Bu cevap işime yaramadı.",
        "Üç kere aradım, kimse açmıyor!",
        "Hep aynı şeyi söylüyorsun, gerçek bir insanla konuşabilir miyim?",
        "Bunu zaten denedim, olmuyor!",
        "Bu neden her seferinde bu kadar zor?",
    ),
    complaint_reply=(
        "Çok özür dilerim, bu gerçekten can sıkıcı.",
        "Yaşadığınız sorun için özür dilerim.",
    ),
    give_up=("Boş ver.", "Tamam, boş ver, kendim ararım.", "Peki, ben İK'yı ararım."),
    give_up_reply=(
        "Daha fazla yardımcı olamadığım için üzgünüm. İK'ya her zaman {hr_phone} numarasından "
        "ulaşabilirsiniz.",
    ),
    ask_human=(
        "Bu konuyu İK'dan biriyle konuşabilir miyim?",
        "Bana bu konuda kim yardımcı olabilir?",
    ),
    forward=(
        "Sorunuzu İK ekibine ilettim, iki iş günü içinde size dönecekler.\nBeklemek "
        "istemezseniz {hr_phone} numarasını arayabilir (pzt–cum 9:00–17:00) ya da {hr_mail} "
        "adresine e-posta gönderebilirsiniz.",
    ),
    escalate=(
        "Sorununuzu mağaza müdürünüze ({manager}) ilettim. Bugün ya da yarın sizinle iletişime "
        "geçecek.",
    ),
    preamble="Sohbet personel uygulamasından başlatıldı",
    weekdays=("Pazartesi", "Salı", "Çarşamba", "Perşembe", "Cuma", "Cumartesi", "Pazar"),
    months=(
        "Ocak",
        "Şubat",
        "Mart",
        "Nisan",
        "Mayıs",
        "Haziran",
        "Temmuz",
        "Ağustos",
        "Eylül",
        "Ekim",
        "Kasım",
        "Aralık",
    ),
    date_pattern="{day} {month} {weekday}",
    week_pattern="{week}. hafta",
    inline_sep=", ",
    lower_inline=True,
    hr_phone="020 555 0142",
    it_phone="020 555 0199",
)

LANGS: dict[str, Lang] = {lang.code: lang for lang in (NL, EN, DE, TR)}

# ----------------------------------------------------------------------------------- stores


@dataclass(frozen=True)
class Store:
    number: str
    city: str
    country: str
    manager: str
    ip: str


STORES: tuple[Store, ...] = (
    Store("1012", "Utrecht", "NL", "Sanne de Vries", "192.0.2.14"),
    Store("1047", "Amersfoort", "NL", "Mark Jansen", "192.0.2.47"),
    Store("1103", "Zwolle", "NL", "Fatima El Amrani", "192.0.2.103"),
    Store("1158", "Haarlem", "NL", "Joost Bakker", "198.51.100.58"),
    Store("1204", "Eindhoven", "NL", "Lotte Visser", "198.51.100.4"),
    Store("1236", "Groningen", "NL", "Dennis Mulder", "198.51.100.36"),
    Store("1310", "Rotterdam", "NL", "Priya Ramdin", "203.0.113.10"),
    Store("1342", "Den Haag", "NL", "Kees van Dijk", "203.0.113.42"),
    Store("1377", "Arnhem", "NL", "Eva Smit", "203.0.113.77"),
    Store("1405", "Tilburg", "NL", "Ricardo Pinas", "192.0.2.145"),
    Store("2011", "Antwerpen", "BE", "Wout Peeters", "198.51.100.111"),
    Store("2034", "Gent", "BE", "An Claes", "198.51.100.134"),
    Store("3005", "Kleve", "DE", "Jonas Becker", "203.0.113.205"),
    Store("3017", "Aachen", "DE", "Lena Schmitt", "203.0.113.217"),
    Store("3022", "Düsseldorf", "DE", "Tobias Wagner", "203.0.113.222"),
)
COLLEAGUES: tuple[str, ...] = (
    "Daan", "Noor", "Yusuf", "Emma", "Mehmet", "Lisa", "Sem", "Elif", "Kevin", "Julia",
    "Bram", "Zeynep", "Tim", "Anouk", "Niklas", "Hannah", "Burak", "Fleur", "Jasper", "Merve",
)  # fmt: skip
STORE_COUNTRY_WEIGHTS: dict[str, dict[str, int]] = {
    "nl": {"NL": 88, "BE": 12, "DE": 0},
    "en": {"NL": 80, "BE": 10, "DE": 10},
    "de": {"NL": 25, "BE": 0, "DE": 75},
    "tr": {"NL": 85, "BE": 10, "DE": 5},
}
DOC_NETS: tuple[str, ...] = ("192.0.2", "198.51.100", "203.0.113")
HOURS: tuple[int, ...] = tuple(range(6, 23))
HOUR_WEIGHTS: tuple[int, ...] = (2, 5, 7, 6, 5, 4, 5, 6, 5, 4, 4, 5, 6, 7, 7, 6, 3)

# ----------------------------------------------------------------------------- conversation


@dataclass
class Message:
    speaker: str  # "User" or "Assistant"
    text: str
    at: datetime


@dataclass
class Conversation:
    lang: Lang
    topic: str
    mood: str  # positive | neutral | negative
    outcome: str  # normal | forwarded | escalated
    store: Store
    messages: list[Message]
    reply_delays: list[float]
    session_id: str = ""
    ip: str = ""
    country: str = ""
    variants: set[str] = field(default_factory=set)

    @property
    def start(self) -> datetime:
        return self.messages[0].at

    @property
    def end(self) -> datetime:
        return self.messages[-1].at

    @property
    def user_messages(self) -> int:
        return sum(m.speaker == "User" for m in self.messages)


def local_date(lang: Lang, day: date) -> str:
    return lang.date_pattern.format(
        weekday=lang.weekdays[day.weekday()], day=day.day, month=lang.months[day.month - 1]
    )


def make_slots(rng: Random, lang: Lang, store: Store, today: date) -> dict[str, str]:
    """Values for the {placeholders} of one conversation."""
    offsets = rng.sample(range(1, 15), 2)
    start_minutes = rng.choice((360, 420, 450, 480, 540, 720, 780, 840, 930, 960))
    end_minutes = min(start_minutes + rng.choice((240, 300, 360, 420, 480, 510)), 22 * 60)
    hours = rng.choice((12, 16, 20, 24, 28, 32))
    after_payday = today > date(2026, 10, 23)
    payday = date(2026, 11, 25) if after_payday else date(2026, 10, 23)
    payslip_month = 10 if after_payday else 9
    next_week = today + timedelta(days=7)
    publish = next_week - timedelta(days=next_week.weekday())  # Monday, two weeks ahead of {week}
    return {
        "bot": BOT,
        "store": store.number,
        "city": store.city,
        "manager": store.manager,
        "manager_first": store.manager.split()[0],
        "colleague": rng.choice(COLLEAGUES),
        "day": local_date(lang, today + timedelta(days=offsets[0])),
        "week": lang.week_pattern.format(week=(today + timedelta(days=21)).isocalendar()[1]),
        "publish_day": local_date(lang, publish),
        "time": f"{start_minutes // 60:02d}:{start_minutes % 60:02d}",
        "time2": f"{end_minutes // 60:02d}:{end_minutes % 60:02d}",
        "hours": str(hours),
        "hours2": str(hours + rng.choice((4, 8))),
        "leave_hours": str(rng.randrange(16, 160, 4)),
        "payday": local_date(lang, payday),
        "month": lang.months[payslip_month - 1],
        "portal": PORTAL,
        "hr_mail": HR_MAIL,
        "hr_phone": lang.hr_phone,
        "it_phone": lang.it_phone,
    }


def lower_first(lang: Lang, text: str) -> str:
    """The question glued after an inline greeting ("Hoi, ik ben ziek ...")."""
    if not lang.lower_inline or not text:
        return text
    first_word = text.split(maxsplit=1)[0]
    if lang.code == "en" and first_word.rstrip(",").split("'")[0] == "I":
        return text
    head = text[0]
    if lang.code == "tr":  # dotted and dotless i
        return {"İ": "i", "I": "ı"}.get(head, head.lower()) + text[1:]
    return head.lower() + text[1:]


Turn = tuple[str, str | None]


MORNING_GREETINGS = frozenset({"Goedemorgen", "Good morning", "Guten Morgen", "Günaydın"})
EVENING_GREETINGS = frozenset({"Goedenavond", "Good evening", "Guten Abend", "İyi akşamlar"})


def greetings(lang: Lang, hour: int) -> list[str]:
    """No "good evening" at seven in the morning."""
    return [
        g
        for g in lang.greet
        if not (g in MORNING_GREETINGS and hour >= 12)
        and not (g in EVENING_GREETINGS and hour < 18)
    ]


def plan_turns(
    rng: Random, lang: Lang, topic: str, mood: str, outcome: str, hour: int
) -> list[Turn]:
    """User message and assistant reply pairs; only the last reply may be missing."""
    tail: list[Turn] = []
    forward_inline = False
    if mood == "negative":
        reply = rng.choice(lang.complaint_reply)
        if outcome == "escalated":
            reply = f"{reply} {rng.choice(lang.escalate)}"
        elif outcome == "forwarded":
            reply = f"{reply}\n{rng.choice(lang.forward)}"
        tail.append((rng.choice(lang.complaint), reply))
    elif outcome == "forwarded":
        if rng.random() < 0.6:
            tail.append((rng.choice(lang.ask_human), rng.choice(lang.forward)))
        else:
            forward_inline = True

    if mood == "positive":
        tail.append((rng.choice(lang.thanks), rng.choice(lang.thanks_reply)))
    elif mood == "neutral" and rng.random() < 0.6:
        tail.append(
            (rng.choice(lang.ok), rng.choice(lang.ok_reply) if rng.random() < 0.5 else None)
        )
    elif mood == "negative" and outcome == "normal" and rng.random() < 0.6:
        answer = rng.choice(lang.give_up_reply) if rng.random() < 0.6 else None
        tail.append((rng.choice(lang.give_up), answer))
    elif mood == "negative" and rng.random() < 0.4:
        tail.append((rng.choice(lang.ok), None))

    fixed_questions = sum(user.endswith("?") for user, _ in tail)
    budget = rng.choices((1, 2, 3, 4), weights=(30, 35, 22, 13))[0]
    n_questions = max(1, min(budget - fixed_questions, 4 - fixed_questions))
    greeting = rng.choices(("separate", "inline", "none"), weights=(25, 35, 40))[0]
    while (greeting == "separate") + n_questions + len(tail) > 6:
        if greeting == "separate":
            greeting = "inline"
        else:
            n_questions -= 1

    pool = list(lang.topics[topic])
    rng.shuffle(pool)
    chosen = pool[:n_questions]
    if len(chosen) >= 2 and rng.random() < 0.25:
        other = rng.choice([t for t in HR_TOPICS if t != topic])
        chosen[-1] = rng.choice(lang.topics[other])

    turns: list[Turn] = []
    greets = greetings(lang, hour)
    if greeting == "separate":
        turns.append((rng.choice(greets), rng.choice(lang.greet_reply)))
    for i, (question, answer) in enumerate(chosen):
        text = question
        if lang.lower_inline and rng.random() < 0.12:
            text = lower_first(lang, text)
        if i == 0 and greeting == "inline":
            text = rng.choice(greets) + lang.inline_sep + lower_first(lang, question)
        if forward_inline and i == len(chosen) - 1:
            answer = f"{answer}\n\n{rng.choice(lang.forward)}"
        turns.append((text, answer))
    return turns + tail


def build_conversation(rng: Random, lang: Lang, start: datetime) -> Conversation:
    topic = rng.choices(TOPICS, weights=TOPIC_WEIGHTS)[0]
    mood = rng.choices(("positive", "neutral", "negative"), weights=(38, 40, 22))[0]
    if mood == "negative":
        outcome = rng.choices(("normal", "forwarded", "escalated"), weights=(35, 30, 35))[0]
    else:
        outcome = rng.choices(("normal", "forwarded"), weights=(90, 10))[0]
    if topic in ("smalltalk", "unrelated") and outcome == "forwarded":
        outcome = "normal"
    weights = STORE_COUNTRY_WEIGHTS[lang.code]
    country = rng.choices(list(weights), weights=list(weights.values()))[0]
    store = rng.choice([s for s in STORES if s.country == country])
    slots = make_slots(rng, lang, store, start.date())

    messages: list[Message] = []
    delays: list[float] = []
    clock = 0.0
    previous_reply = ""
    for i, (user, reply) in enumerate(plan_turns(rng, lang, topic, mood, outcome, start.hour)):
        user_text = user.format_map(slots)
        if i > 0:
            clock += rng.uniform(4, 20) + len(previous_reply) * rng.uniform(0.02, 0.06)
            clock += len(user_text) * rng.uniform(0.15, 0.45)
        messages.append(Message("User", user_text, start + timedelta(seconds=math.floor(clock))))
        if reply is None:
            break
        reply_text = reply.format_map(slots)
        delay = rng.uniform(0.5, 3.6) + len(reply_text) / rng.uniform(250, 450)
        delays.append(delay)
        clock += delay
        at = start + timedelta(seconds=math.floor(clock))
        messages.append(Message("Assistant", reply_text, at))
        previous_reply = reply_text
    return Conversation(lang, topic, mood, outcome, store, messages, delays)


# ------------------------------------------------------------------------------------ files


def random_start(rng: Random) -> datetime:
    day_weights = [3 if (FIRST_DAY + timedelta(days=d)).weekday() < 5 else 2 for d in range(N_DAYS)]
    day = FIRST_DAY + timedelta(days=rng.choices(range(N_DAYS), weights=day_weights)[0])
    hour = rng.choices(HOURS, weights=HOUR_WEIGHTS)[0]
    return datetime(day.year, day.month, day.day, hour, rng.randrange(60), rng.randrange(60))


def transcript_text(conv: Conversation, rng: Random) -> str:
    """The transcript file in the §4.1 format, with this conversation's variants applied."""
    blank_between = rng.random() < 0.3
    middle = range(1, len(conv.messages) - 1)
    unstamped: set[int] = set()
    if "no_timestamp" in conv.variants:
        unstamped = set(rng.sample(middle, 2 if len(middle) >= 4 else 1))
    lines: list[str] = []
    if "preamble" in conv.variants:
        lines.append(conv.lang.preamble)
    for i, msg in enumerate(conv.messages):
        label = (
            "Bot" if msg.speaker == "Assistant" and "bot_label" in conv.variants else msg.speaker
        )
        stamp = "" if i in unstamped else f"[{msg.at.strftime(TIME_FORMAT)}] "
        if blank_between and i > 0:
            lines.append("")
        first, *rest = msg.text.split("\n")
        lines.append(f"{stamp}{label}: {first}")
        lines.extend(rest)
    newline = "\r\n" if "crlf" in conv.variants else "\n"
    return newline.join(lines) + newline


def country_value(conv: Conversation, rng: Random) -> str:
    if conv.lang.code == "tr" and rng.random() < 0.25:
        return "TR"  # on holiday, checking the schedule from abroad
    return conv.store.country


def ip_value(conv: Conversation, rng: Random) -> str:
    if conv.country == conv.store.country and rng.random() < 0.65:
        return conv.store.ip  # the store's wifi
    return f"{rng.choice(DOC_NETS)}.{rng.randint(1, 254)}"


def csv_row(conv: Conversation, rng: Random) -> list[str]:
    """The 16 export columns, filled the way the upstream export fills them."""
    lang = conv.lang
    unanalysed = "unanalysed" in conv.variants
    language = "" if unanalysed or rng.random() < 0.05 else rng.choice(lang.csv_names)
    if conv.mood == "positive":
        sentiment = rng.choices(("happy", "excited"), weights=(75, 25))[0]
    elif conv.mood == "neutral":
        sentiment = rng.choices(("neutral", "happy"), weights=(80, 20))[0]
    else:
        sentiment = rng.choices(("frustrated", "angry"), weights=(65, 35))[0]
    if unanalysed or rng.random() < 0.04:
        sentiment = ""
    escalated = "yes" if conv.outcome == "escalated" else "no"
    forwarded = "yes" if conv.outcome == "forwarded" else "no"
    if unanalysed:
        escalated = forwarded = ""
    elif rng.random() < 0.04:
        escalated = ""
    category = rng.choice(UPSTREAM_CATEGORY[conv.topic])
    if unanalysed or rng.random() < 0.08:
        category = ""
    url = "" if "no_url" in conv.variants else f"transcripts/{conv.session_id}.txt"
    users = conv.user_messages
    if "zero_tokens" in conv.variants:
        tokens = 0
    else:
        tokens = sum(rng.randint(6300, 7100) for _ in range(users))
    avg = sum(conv.reply_delays) / len(conv.reply_delays)
    return [
        conv.session_id,
        conv.start.strftime(TIME_FORMAT),
        conv.end.strftime(TIME_FORMAT),
        conv.ip,
        conv.country,
        language,
        str(users),
        sentiment,
        escalated,
        forwarded,
        url,
        f"{avg:.3f}",
        str(tokens),
        f"{tokens * EUR_PER_TOKEN:.4f}",
        category,
        conv.messages[0].text,
    ]


@dataclass
class Plan:
    """Which conversation gets which deliberate quirk (indices into the time-sorted list)."""

    bad: dict[str, int]
    duplicate_of: int
    duplicate_at: int
    variants: dict[str, list[int]]


def pick_plan(rng: Random, convs: Sequence[Conversation]) -> Plan:
    n = len(convs)
    taken: set[int] = set()

    def pick(count: int, candidates: Sequence[int]) -> list[int]:
        free = [i for i in candidates if i not in taken]
        chosen = sorted(rng.sample(free, count))
        taken.update(chosen)
        return chosen

    everything = range(n)
    # The duplicated row is Dutch: generate() left one Dutch line of the quota for it.
    dutch_early = [i for i in range(5, n // 2) if convs[i].lang.code == "nl"]
    duplicate_of = pick(1, dutch_early)[0]
    bad_kinds = ("impossible_date", "fifteen_columns", "blank_id", "bad_tokens", "iso_date")
    bad_rows = pick(len(bad_kinds), range(8, n - 8))
    rng.shuffle(bad_rows)
    bad = dict(zip(bad_kinds, bad_rows, strict=True))
    long_ones = [i for i in everything if len(convs[i].messages) >= 5]
    multi_reply = [i for i in everything if len(convs[i].reply_delays) >= 2]
    variants = {
        "no_url": pick(8, everything),
        "missing_file": pick(3, everything),
        "empty_file": pick(1, everything),
        "no_timestamp": pick(4, long_ones),
        "preamble": pick(1, everything),
        "bot_label": pick(1, multi_reply),
        "crlf": pick(1, long_ones),
        "zero_tokens": pick(1, everything),
    }
    # Overlapping quirks (CSV columns only, transcript untouched): may coincide with the above.
    variants["unanalysed"] = sorted(rng.sample(range(n), 7))
    return Plan(bad, duplicate_of, min(duplicate_of + rng.randint(25, 45), n), variants)


def generate(seed: int, out: Path) -> dict[str, int]:
    rng = Random(seed)
    n_conversations = N_LINES - 1  # the duplicate row re-uses a conversation
    langs = [code for code, count in LANG_LINES.items() for _ in range(count)]
    langs.remove("nl")  # the duplicated conversation below is Dutch; it supplies that line
    rng.shuffle(langs)
    convs = [build_conversation(rng, LANGS[code], random_start(rng)) for code in langs]
    convs.sort(key=lambda c: c.start)
    assert len(convs) == n_conversations
    for conv in convs:
        conv.session_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        conv.country = country_value(conv, rng)
        conv.ip = ip_value(conv, rng)

    plan = pick_plan(rng, convs)
    for variant, indices in plan.variants.items():
        for i in indices:
            convs[i].variants.add(variant)
    nl_rows = [i for i, c in enumerate(convs) if c.lang.code == "nl"]
    de_rows = [i for i, c in enumerate(convs) if c.lang.code == "de" and c.country == "DE"]
    for i in rng.sample(nl_rows, 2):
        convs[i].country = "Nederland"
    convs[rng.choice(de_rows)].country = "Germany"
    for i in rng.sample([i for i, c in enumerate(convs) if len(c.country) == 2], 2):
        convs[i].country = ""

    rows = [csv_row(conv, rng) for conv in convs]
    bad = plan.bad
    start_time = rows[bad["impossible_date"]][1].split(" ")[1]
    rows[bad["impossible_date"]][1] = f"31.02.2026 {start_time}"
    del rows[bad["fifteen_columns"]][11]  # the export lost avg_response_time
    rows[bad["blank_id"]][0] = ""
    rows[bad["bad_tokens"]][12] = "n/a"
    for col in (1, 2):
        wall = datetime.strptime(rows[bad["iso_date"]][col], TIME_FORMAT)
        rows[bad["iso_date"]][col] = wall.strftime("%Y-%m-%d %H:%M:%S")
    duplicate = list(rows[plan.duplicate_of])
    duplicate[7] = "frustrated" if duplicate[7] != "frustrated" else "neutral"
    rows.insert(plan.duplicate_at, duplicate)
    assert len(rows) == N_LINES

    out.mkdir(parents=True, exist_ok=True)
    transcripts = out / "transcripts"
    transcripts.mkdir(exist_ok=True)
    for stale in sorted(transcripts.glob("*.txt")):
        stale.unlink()
    with (out / "sessions.csv").open("w", encoding="utf-8", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows(rows)
    written = 0
    for conv in convs:
        if conv.variants & {"no_url", "missing_file"}:
            continue
        text = "" if "empty_file" in conv.variants else transcript_text(conv, rng)
        (transcripts / f"{conv.session_id}.txt").write_bytes(text.encode("utf-8"))
        written += 1
    (out / "README.md").write_text(readme(seed, convs, plan), encoding="utf-8")
    return {"lines": len(rows), "transcripts": written}


def readme(seed: int, convs: Sequence[Conversation], plan: Plan) -> str:
    """examples/demo/README.md, with the line numbers and ids of this seed's defects."""

    def line(i: int) -> int:  # 1-based line in sessions.csv of conversation i
        return i + 1 + (i >= plan.duplicate_at)

    def ids(variant: str) -> str:
        return "".join(f"\n  - `{convs[i].session_id}`" for i in plan.variants[variant])

    bad = plan.bad
    good = [i for i in range(len(convs)) if i not in bad.values()]
    langs = {code: sum(c.lang.code == code for c in convs) for code in LANG_LINES}
    langs["nl"] += 1  # the duplicate line
    fetched = sum(not convs[i].variants & {"no_url", "missing_file", "empty_file"} for i in good)
    original = line(plan.duplicate_of)
    mix = (
        f"Dutch ({langs['nl']} lines), English ({langs['en']}), German ({langs['de']}) "
        f"and Turkish ({langs['tr']})"
    )
    unanalysed = len(plan.variants["unanalysed"])
    defects = sorted(
        [
            (
                line(bad["impossible_date"]),
                "start time `31.02.2026 …`",
                "impossible date (the original rolled it over to 3 March)",
            ),
            (
                line(bad["fifteen_columns"]),
                "15 columns, `avg_response_time` missing",
                "wrong column count (the original padded the row, shifting the values)",
            ),
            (
                line(bad["blank_id"]),
                "empty session id",
                "missing id (the original merged all id-less rows into one record)",
            ),
            (
                line(bad["bad_tokens"]),
                "tokens `n/a`",
                "not a number (the original stored null)",
            ),
            (
                line(bad["iso_date"]),
                "ISO times `2026-10-… …`",
                "wrong date format (the original accepted it, then failed on every run)",
            ),
            (
                plan.duplicate_at + 1,
                f"same session id as line {original}, different sentiment",
                f"duplicate; line {original} wins",
            ),
        ]
    )
    table = "\n".join(f"| {n} | {what} | rejected: {why} |" for n, what, why in defects)
    return f"""# Demo data: Demo Retail BV

Invented chat sessions of an invented tenant: "{BOT}", the HR assistant of a supermarket chain,
answering shop staff in {mix},
between 5 and 25 October 2026. People, phone numbers and e-mail addresses are made up; IPs come
from the documentation ranges (RFC 5737).

- `sessions.csv`: the upstream export format, {N_LINES} lines (16 columns, no header, LF,
  `DD.MM.YYYY HH:MM:SS` wall-clock times).
- `transcripts/<session_id>.txt`: one transcript per session. Column 10 holds the relative path
  `transcripts/<session_id>.txt`, resolved against the CSV file's directory.

Generated by `examples/make_demo_data.py` (seed {seed}); do not edit by hand. Regenerate with
`.venv/bin/python examples/make_demo_data.py`. `livedash demo` imports it into a fresh SQLite
file and runs all stages.

## Broken CSV lines (on purpose)

Each one must be rejected with its line number and a reason, while the other lines import.

| line | defect | expected |
|---|---|---|
{table}

Result: {N_LINES} rows seen, {len(good)} sessions, 6 rejections. The rejected lines still point
at transcript files; no session uses those files.

## Transcript problems (on purpose)

- No transcript URL (column 10 empty, no file): TRANSCRIPT_FETCH is SKIPPED, and so are AI
  analysis and question extraction.{ids("no_url")}
- URL present but the file is missing: TRANSCRIPT_FETCH FAILED (`not_found`), not
  retried.{ids("missing_file")}
- Empty file: TRANSCRIPT_FETCH FAILED (`empty`), not retried.{ids("empty_file")}

The other {fetched} transcripts fetch and parse. Variants that must parse without losing text:

- Some `User:`/`Assistant:` headers without a timestamp (the message has no time):\
{ids("no_timestamp")}
- A line of text before the first header (kept as a message of role "other"):\
{ids("preamble")}
- The assistant labelled `Bot:` instead of `Assistant:`:{ids("bot_label")}
- CRLF line endings:{ids("crlf")}
- Throughout: multi-line assistant messages (Markdown lists), blank lines between messages in
  some files, a user message and its reply in the same second.

## Odd but valid values (must import; normalised later)

Country names `Nederland` and `Germany` and two empty countries among alpha-2 codes; language as
a free-text name in any case (`Dutch`, `dutch`, `Nederlands`, `english`, `Deutsch`, `turkish`)
or empty; sentiment words (`happy`, `excited`, `neutral`, `frustrated`, `angry`) or empty;
`yes`/`no` or empty flags; free-text or empty categories; one row with tokens `0` and cost
`0.0000` (zero, not null); {unanalysed} rows where language, sentiment, flags and category
are all empty; initial messages containing commas, quoted.
"""


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="random seed")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(__file__).resolve().parent / "demo",
        help="output folder (default: examples/demo next to this script)",
    )
    args = parser.parse_args(argv)
    counts = generate(args.seed, args.out)
    print(f"wrote {args.out / 'sessions.csv'}: {counts['lines']} lines, "
          f"{counts['transcripts']} transcript files")  # fmt: skip


if __name__ == "__main__":
    main()
