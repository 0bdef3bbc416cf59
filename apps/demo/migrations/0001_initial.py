from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    dependencies = []

    operations = [
        migrations.CreateModel(
            name="DemoSeed",
            fields=[
                ("key", models.CharField(max_length=200, primary_key=True, serialize=False)),
                ("seeded_at", models.DateTimeField(auto_now_add=True)),
            ],
            options={"ordering": ["seeded_at", "key"]},
        ),
    ]
